"""Quality control: specifications, release, batch comparability, stability and shelf life."""

"""Input layer: videos (TIFF stacks, video containers, frame folders) read lazily in chunks."""

from exocheck.io.video import Video, VideoMeta, open_video, write_tiff

__all__ = ["Video", "VideoMeta", "open_video", "write_tiff"]

"""Products (with label claims) and specifications (versioned, immutable once used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from exocheck.errors import StoreError
from exocheck.qc.specification import (
    Specification,
    parse_specification,
    read_specification_text,
    spec_sha256,
)
from exocheck.store import models as m
from exocheck.store.base import StoreBase, check_actor


def _product_dict(product: m.Product) -> dict[str, Any]:
    return {
        "product": product.name,
        "description": product.description,
        "particles_per_unit": product.particles_per_unit,
        "fill_volume_ml": product.fill_volume_ml,
        "unit_name": product.unit_name,
    }


class CatalogMixin(StoreBase):
    """Products and specifications."""

    def add_product(
        self,
        name: str,
        *,
        particles_per_unit: float | None = None,
        fill_volume_ml: float | None = None,
        unit_name: str = "vial",
        description: str | None = None,
        by: str,
    ) -> dict[str, Any]:
        """Add a product with its label claim (particles per unit and fill volume)."""
        by = check_actor(by)
        name = name.strip()
        if not name:
            raise StoreError("a product needs a name")
        for label, value in (
            ("particles per unit", particles_per_unit),
            ("fill volume", fill_volume_ml),
        ):
            if value is not None and not value > 0:
                raise StoreError(f"product {name}: {label} must be positive, got {value}")
        with self._action() as session:
            if session.scalar(select(m.Product).where(m.Product.name == name)) is not None:
                raise StoreError(f"product {name!r} already exists")
            product = m.Product(
                name=name,
                particles_per_unit=particles_per_unit,
                fill_volume_ml=fill_volume_ml,
                unit_name=unit_name,
                description=description,
                created_by=by,
            )
            session.add(product)
            after = _product_dict(product)
            self._audit(session, by, "product.add", "product", name, after=after)
        return after

    def list_products(self) -> list[dict[str, Any]]:
        with self._read() as session:
            return [
                _product_dict(p)
                for p in session.scalars(select(m.Product).order_by(m.Product.name))
            ]

    def add_specification(
        self, source: str | Path, *, by: str, text: str | None = None, product: str | None = None
    ) -> dict[str, Any]:
        """Store a specification from a YAML file (or from ``text``, with ``source`` naming it).

        Storing the same name and version again with the same text changes nothing, except that
        a ``product`` it does not serve yet is added to the products it serves (one document can
        serve several products); with other text it replaces the stored one only while no lot
        uses it. A used specification is immutable: give the changed one a new version.
        """
        by = check_actor(by)
        if text is None:
            text = read_specification_text(source)
        spec = parse_specification(text, source=str(source))
        digest = spec_sha256(text)
        with self._action() as session:
            product_name = product or spec.product
            product_row = self._product(session, product_name) if product_name else None
            existing = session.scalar(
                select(m.Specification).where(
                    m.Specification.name == spec.name, m.Specification.version == spec.version
                )
            )
            info = {
                "specification": spec.name,
                "version": spec.version,
                "sha256": digest,
                "product": product_row.name if product_row else None,
            }
            if existing is not None:
                if existing.sha256 == digest:
                    if product_row is None or self._serves(session, existing, product_row):
                        return info | {"changed": False}
                    self._link(session, existing, product_row, by)
                    self._audit(
                        session,
                        by,
                        "specification.serve",
                        "specification",
                        spec.label,
                        after=info,
                    )
                    return info | {"changed": True, "serves": self._served(session, existing)}
                used = session.scalar(
                    select(func.count(m.Lot.id)).where(m.Lot.specification_id == existing.id)
                )
                if used:
                    raise StoreError(
                        f"specification {spec.label} is used by {used} lot(s) and cannot change; "
                        f"store the new text as version {self._next_version(session, spec.name)}"
                    )
                before = {"sha256": existing.sha256}
                existing.yaml_text, existing.sha256 = text, digest
                if product_row is not None:
                    existing.product_id = existing.product_id or product_row.id
                    if not self._serves(session, existing, product_row):
                        self._link(session, existing, product_row, by)
                self._audit(
                    session,
                    by,
                    "specification.replace",
                    "specification",
                    spec.label,
                    before=before,
                    after=info,
                )
                return info | {"changed": True}
            row = m.Specification(
                name=spec.name,
                version=spec.version,
                yaml_text=text,
                sha256=digest,
                created_by=by,
                product_id=product_row.id if product_row else None,
            )
            session.add(row)
            session.flush()
            if product_row is not None:
                self._link(session, row, product_row, by, with_spec=True)
            self._audit(session, by, "specification.add", "specification", spec.label, after=info)
        return info | {"changed": True}

    @staticmethod
    def _serves(session, spec: m.Specification, product: m.Product) -> bool:
        return (
            session.scalar(
                select(m.SpecificationProduct.id).where(
                    m.SpecificationProduct.specification_id == spec.id,
                    m.SpecificationProduct.product_id == product.id,
                )
            )
            is not None
        )

    @staticmethod
    def _link(
        session, spec: m.Specification, product: m.Product, by: str, *, with_spec: bool = False
    ) -> None:
        """Let ``spec`` serve ``product`` (``with_spec``: the link made with the specification
        itself, dated as it is, as migration 0006 dates the links it makes)."""
        link = m.SpecificationProduct(
            specification_id=spec.id, product_id=product.id, created_by=by
        )
        if with_spec:
            link.created_at, link.created_by = spec.created_at, spec.created_by
        session.add(link)
        session.flush()

    @staticmethod
    def _served(session, spec: m.Specification) -> list[str]:
        return list(
            session.scalars(
                select(m.Product.name)
                .join(m.SpecificationProduct, m.SpecificationProduct.product_id == m.Product.id)
                .where(m.SpecificationProduct.specification_id == spec.id)
                .order_by(m.Product.name)
            )
        )

    @staticmethod
    def _next_version(session, name: str) -> int:
        top = session.scalar(
            select(func.max(m.Specification.version)).where(m.Specification.name == name)
        )
        return (top or 0) + 1

    def get_specification(self, ref: str) -> Specification:
        """The parsed specification ``name`` (newest version) or ``name@version``."""
        with self._read() as session:
            row = self._spec(session, ref)
            return parse_specification(row.yaml_text, source=f"{row.name}@{row.version}")

    def list_specifications(self) -> list[dict[str, Any]]:
        with self._read() as session:
            rows = session.scalars(
                select(m.Specification).order_by(m.Specification.name, m.Specification.version)
            )
            out = []
            for row in rows:
                used = session.scalar(
                    select(func.count(m.Lot.id)).where(m.Lot.specification_id == row.id)
                )
                out.append(
                    {
                        "specification": row.name,
                        "version": row.version,
                        "sha256": row.sha256,
                        "lots": used,
                    }
                )
            return out

"""Export rows a shop reads back: a Merchant Center supplemental feed or a Shopify product CSV.

Both carry the shop's own product id and the category ProtoShelf settled on (the merchandiser's
label, else the prediction), so the shop updates the products it already has. Items without a
product id cannot be matched by the shop and are left out, as are unassigned items unless asked.
"""
from __future__ import annotations

FORMATS = ("protoshelf", "google", "shopify")
HEADERS = {
    "google": ["id", "product_type"],
    "shopify": ["Handle", "Title", "Type"],
}


def shop_row(format: str, product_id: str | None, title: str | None, category: str | None,
             include_unassigned: bool) -> list[str | None] | None:
    """The row's cells, or None when the row is left out."""
    if not product_id or (not category and not include_unassigned):
        return None
    if format == "google":
        return [product_id, category]
    return [product_id, title, category]

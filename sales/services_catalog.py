"""Writes for products and price lists (the catalogue every deal line and quote line is priced from)."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.actors import Actor
from crm.services import record_lock, record_save
from sales.models import PriceList, PriceListItem, Product


@transaction.atomic
def product_create(*, user: Actor, data: Mapping[str, Any]) -> Product:
    return record_save(instance=Product(), data=data, user=user)


@transaction.atomic
def product_update(*, product: Product, user: Actor, data: Mapping[str, Any]) -> Product:
    return record_save(instance=record_lock(product), data=data, user=user)


def _items_replace(*, price_list: PriceList, items: Iterable[Mapping[str, Any]]) -> None:
    """Make ``items`` ([{product, unit_price}]) the list's prices: updated, added, the others removed."""
    wanted: dict[int, Mapping[str, Any]] = {}
    for index, item in enumerate(items):
        product = item["product"]
        if product.pk in wanted:
            raise ValidationError({"items": f"Item {index + 1}: {product} is priced twice in this list."})
        wanted[product.pk] = item
    existing = {item.product_id: item for item in price_list.items.select_for_update()}
    for product_id, item in existing.items():
        if product_id not in wanted:
            item.delete()
    for index, (product_id, values) in enumerate(wanted.items()):
        instance = existing.get(product_id) or PriceListItem(price_list=price_list)
        try:
            record_save(
                instance=instance,
                data={"product": values["product"], "unit_price": values["unit_price"]},
                publish=False,
            )
        except ValidationError as exc:
            messages = "; ".join(f"{key}: {' '.join(errors)}" for key, errors in exc.message_dict.items())
            raise ValidationError({"items": f"Item {index + 1}: {messages}"}) from exc


@transaction.atomic
def price_list_create(
    *, user: Actor, data: Mapping[str, Any], items: Iterable[Mapping[str, Any]] | None = None
) -> PriceList:
    price_list = record_save(instance=PriceList(), data=data, user=user)
    if items is not None:
        _items_replace(price_list=price_list, items=items)
    return price_list


@transaction.atomic
def price_list_update(
    *,
    price_list: PriceList,
    user: Actor,
    data: Mapping[str, Any],
    items: Iterable[Mapping[str, Any]] | None = None,
) -> PriceList:
    """Update a price list; ``items``, when given, replaces its prices."""
    price_list = record_save(instance=record_lock(price_list), data=data, user=user)
    if items is not None:
        _items_replace(price_list=price_list, items=items)
    return price_list


@transaction.atomic
def price_list_item_create(*, user: Actor, data: Mapping[str, Any]) -> PriceListItem:
    return record_save(instance=PriceListItem(), data=data, user=user)


@transaction.atomic
def price_list_item_update(*, item: PriceListItem, user: Actor, data: Mapping[str, Any]) -> PriceListItem:
    return record_save(instance=record_lock(item), data=data, user=user)

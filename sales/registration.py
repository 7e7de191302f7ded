"""What the sales app tells crm about itself, registered from SalesConfig.ready()."""

from crm import registries


def register_with_crm() -> None:
    registries.register_seed_table(
        registries.SeedTable(
            label="opportunities",
            model_label="sales.Opportunity",
            base_id="opportunity",
            fields="OPPORTUNITY_FIELDS",
            rows="opportunities",
        )
    )

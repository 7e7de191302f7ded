"""SalesTeam moves to the crm app (record visibility depends on it): this app forgets the model; its
tables (sales_salesteam, sales_salesteam_members) stay and crm.0018 takes them over with every row."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0010_stage_change_record_index_covered"),
        # The roles migrations read sales.salesteam's permissions: they run while the model is here.
        ("activities", "0007_roles_token_proxy_and_team_management"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="SalesTeam")],
            database_operations=[],
        ),
    ]

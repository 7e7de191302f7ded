# Every search index (crm.search_indexes) keeps 1,000 values of its expression for the planner, not 100:
# with 100, one histogram hit stood for 1% of the table, and a contact's name matching 0.26% of five
# million leads was at times guessed at 2%, so reading the whole table looked cheaper than the trigram
# indexes (3.8 s instead of 0.1 s). The indexes other apps register are set where they exist already;
# those their later migrations make are made with it.

from django.db import migrations

from crm.search_indexes import set_search_statistics


class Migration(migrations.Migration):
    dependencies = [("crm", "0043_company_name_key_indexes")]

    operations = [set_search_statistics()]

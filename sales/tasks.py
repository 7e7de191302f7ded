"""Celery tasks of the sales app: a quote's email, and the periodic expiry of past-valid quotes."""

from celery import shared_task

from crm.actors import SYSTEM


@shared_task(name="sales.tasks.quote_email_send", ignore_result=True)
def quote_email_send(pk: int) -> bool:
    from sales.quote_mail import quote_email_send as send

    return send(quote_id=pk)


@shared_task(name="sales.tasks.quotes_expire", ignore_result=True)
def quotes_expire() -> int:
    from sales.services_quotes import quotes_expire as expire

    return expire(user=SYSTEM)


@shared_task(name="sales.tasks.territory_run", ignore_result=True)
def territory_run(pk: int) -> int:
    from sales.services_territories import territory_run_execute

    run = territory_run_execute(run_id=pk)
    return run.moved if run is not None else 0


@shared_task(name="sales.tasks.stage_timings_refresh", ignore_result=True)
def stage_timings_refresh() -> int:
    """Each stage's usual time, from stage history: what flags a deal as rotting."""
    from sales.insights import stage_timings_refresh as refresh

    return refresh(user=SYSTEM)

"""Settings for the CRM: every knob comes from the environment (see .env.example)."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env file is a convenience for development; the real environment always wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off. Set DEBUG=true for local development, "
            "or give SECRET_KEY a long random value."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin with the CRM site (dashboard index); see crm_project/admin_site.py.
    "crm_project.apps.CRMAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "axes",
    "simple_history",
    "django_celery_beat",
    "crm.apps.CrmConfig",
    "sales.apps.SalesConfig",
    "activities.apps.ActivitiesConfig",
]

MIDDLEWARE = [
    # A request id in every log line and the X-Request-ID answer; latency and queries for /metrics.
    "crm_project.observability.RequestIdMiddleware",
    "crm_project.observability.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A query parameter holding a null character is a 400 here, before any page reads it.
    "crm_project.input_guard.NullCharacterQueryMiddleware",
    # Serves collected static files in production (gunicorn), with compression and caching headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Lists, boards, reports and exports read from DATABASE_REPLICA_URL's replica, when there is one.
    "crm.db.replica.ReplicaReadsMiddleware",
    # Lets the history of a change name who made it (the admin's user, or the API's once DRF authenticates).
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Refuses logins for a username + address pair after too many failures (brute-force guard).
    "axes.backends.AxesStandaloneBackend",
    # Model permissions read in one query a request (it signs nobody in); then Django's own.
    "crm_project.auth_backends.OneQueryPermissionsBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_MINUTES", default=15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "crm/login_locked.html"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0)

ROOT_URLCONF = "crm_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.context_processors.crm_settings",
                "crm.context_processors.notifications",
            ],
        },
    },
]

WSGI_APPLICATION = "crm_project.wsgi.application"
ASGI_APPLICATION = "crm_project.asgi.application"

# SQLite in the project folder by default, so nothing needs setting up;
# postgres://user@host:port/name selects PostgreSQL through psycopg 3.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# The project's backends: Django's, plus a hook before each commit (the outbox writes a transaction's
# events in one INSERT there; crm.db.backends.hooks).
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.postgresql": "crm.db.backends.postgresql",
    "django.db.backends.sqlite3": "crm.db.backends.sqlite3",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
# An optional read replica (PostgreSQL streaming replication): lists, boards, reports and exports
# read from it, a user's pages for CRM_REPLICA_STICKY_SECONDS after their own write from the primary
# (crm/db/replica.py). Tests mirror it on the primary's test database.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db_url("DATABASE_REPLICA_URL")
    DATABASES["replica"]["ENGINE"] = DATABASES["default"]["ENGINE"]
    DATABASES["replica"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["crm.db.replica.ReplicaRouter"]
CRM_REPLICA_STICKY_SECONDS = env.int("CRM_REPLICA_STICKY_SECONDS", default=5)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Wait for a concurrent writer instead of failing at once with "database is locked". A transaction
    # takes the write lock when it begins (IMMEDIATE): one that read first and wrote later would otherwise
    # fail at once, without waiting, whenever a worker process was writing meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # PostgreSQL's JIT compiles any query its planner costs above jit_above_cost: for the CRM's pages,
    # each a few hundred milliseconds at most, compiling took longer than it saved (a rep's funnel at
    # a million leads: 236 of its 345 ms). DATABASE_JIT=true keeps the server's setting.
    if not env.bool("DATABASE_JIT", default=False):
        for alias in DATABASES:
            options = DATABASES[alias].setdefault("OPTIONS", {})
            if "jit" not in options.get("options", ""):
                options["options"] = f"{options.get('options', '')} -c jit=off".strip()
    # Prepared statements: the values sent apart from the SQL (server-side binding), and a statement a
    # connection runs a second time prepared, so PostgreSQL parses it once and may keep its plan
    # (crm/db/backends/postgresql/base.py). The load test's PostgreSQL CPU a request: 17 → 11-12 ms.
    # DATABASE_PREPARED_STATEMENTS=false behind a pooler in transaction mode that does not keep
    # prepared statements apart per client (PgBouncer before 1.21).
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        for alias in DATABASES:
            options = DATABASES[alias].setdefault("OPTIONS", {})
            options.setdefault("server_side_binding", True)
            options.setdefault("prepare_threshold", 2)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The board indexes carry INCLUDE columns so PostgreSQL answers column totals from the index alone;
# SQLite builds them without those columns, which is all the warning says.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files from `collectstatic` in production; the test suite, which has
        # no collected files, selects the plain storage through this variable.
        "BACKEND": env.str(
            "STATICFILES_STORAGE", default="whitenoise.storage.CompressedManifestStaticFilesStorage"
        ),
    },
}

# Security headers and cookies. Production defaults are strict; each can be relaxed from the
# environment (e.g. SECURE_SSL_REDIRECT=false behind a proxy that already redirects).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True

LOGIN_URL = "admin:login"

# `manage.py loaddata demo` finds the demo data here.
FIXTURE_DIRS = [BASE_DIR / "fixtures"]

# The currency every amount in the CRM is kept in (ISO 4217 code), shown beside money.
CRM_CURRENCY = env.str("CRM_CURRENCY", default="USD").upper()
if len(CRM_CURRENCY) != 3 or not CRM_CURRENCY.isalpha():
    raise ImproperlyConfigured(f"CRM_CURRENCY must be a 3-letter ISO 4217 code, not {CRM_CURRENCY!r}.")

# Territories: when on, the members of a territory (its users and its team's members and manager) also
# see the deals and leads of the accounts placed in it; changing them stays with the owner's team.
CRM_TERRITORY_VISIBILITY = env.bool("CRM_TERRITORY_VISIBILITY", default=False)

# An unfiltered admin changelist of a table at least this big shows PostgreSQL's row estimate ("about
# N") instead of counting every row (crm.admin.scale).
CRM_ADMIN_ESTIMATED_COUNT_MIN = env.int("CRM_ADMIN_ESTIMATED_COUNT_MIN", default=100_000)
# On such a table, a filtered or searched changelist counts its rows exactly up to this many; past it
# the page says "about N" from PostgreSQL's estimate of the filtered rows.
CRM_ADMIN_EXACT_COUNT_MAX = env.int("CRM_ADMIN_EXACT_COUNT_MAX", default=10_000)

# Bulk import: the largest file accepted (bytes), and where the admin keeps an upload between its
# preview and the confirmation that imports it for real.
CRM_IMPORT_MAX_BYTES = env.int("CRM_IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
# An XLSX sheet is read row by row whether a row holds data or not: a sheet declaring more rows than
# this (Excel's own limit by default) is refused, and so is one with this many empty rows in a row.
CRM_IMPORT_MAX_ROWS = env.int("CRM_IMPORT_MAX_ROWS", default=1_048_576)
CRM_IMPORT_MAX_EMPTY_ROWS = env.int("CRM_IMPORT_MAX_EMPTY_ROWS", default=10_000)
# Bulk imports check foreign keys once per import, set-based, when the database role may turn the
# per-row triggers off (see crm.importing.writing.ReferenceChecks); False keeps the per-row checks.
CRM_IMPORT_SET_BASED_REFERENCE_CHECKS = env.bool("CRM_IMPORT_SET_BASED_REFERENCE_CHECKS", default=True)

# Predictive win probability: the fewest closed (won or lost) records a pipeline needs before its
# leads or opportunities get an automated probability; below it they get a note instead of a guess.
CRM_WIN_MODEL_MIN_CLOSED = env.int("CRM_WIN_MODEL_MIN_CLOSED", default=20)
if CRM_WIN_MODEL_MIN_CLOSED < 1:
    raise ImproperlyConfigured("CRM_WIN_MODEL_MIN_CLOSED must be at least 1.")
# Churn risk: no won deal for this many months is a warning sign; fewer customer accounts than this in
# the history and the default points are used instead of fitted ones.
CRM_CHURN_NO_WIN_MONTHS = env.int("CRM_CHURN_NO_WIN_MONTHS", default=12)
CRM_CHURN_MIN_HISTORY = env.int("CRM_CHURN_MIN_HISTORY", default=20)
if CRM_CHURN_NO_WIN_MONTHS < 1 or CRM_CHURN_MIN_HISTORY < 1:
    raise ImproperlyConfigured("CRM_CHURN_NO_WIN_MONTHS and CRM_CHURN_MIN_HISTORY must be at least 1.")
# Rotting deals: open deals in their stage for longer than this × the stage's usual time (the mean of
# at least CRM_ROTTING_MIN_STAYS ended stays, from stage history) are flagged on boards and lists.
CRM_ROTTING_FACTOR = env.float("CRM_ROTTING_FACTOR", default=1.5)
CRM_ROTTING_MIN_STAYS = env.int("CRM_ROTTING_MIN_STAYS", default=5)
if CRM_ROTTING_FACTOR <= 0 or CRM_ROTTING_MIN_STAYS < 1:
    raise ImproperlyConfigured("CRM_ROTTING_FACTOR must be above 0 and CRM_ROTTING_MIN_STAYS at least 1.")
# Next best action: an open record quiet (no activity) for this many days is flagged; a new lead not
# contacted within this many days; a sent quote unanswered (and no activity since) for this many days.
CRM_NEXT_ACTION_QUIET_DAYS = env.int("CRM_NEXT_ACTION_QUIET_DAYS", default=14)
CRM_NEXT_ACTION_FIRST_CONTACT_DAYS = env.int("CRM_NEXT_ACTION_FIRST_CONTACT_DAYS", default=1)
CRM_NEXT_ACTION_QUOTE_DAYS = env.int("CRM_NEXT_ACTION_QUOTE_DAYS", default=5)
if min(CRM_NEXT_ACTION_QUIET_DAYS, CRM_NEXT_ACTION_FIRST_CONTACT_DAYS, CRM_NEXT_ACTION_QUOTE_DAYS) < 1:
    raise ImproperlyConfigured("The CRM_NEXT_ACTION_*_DAYS settings must be at least 1.")
# The lifetime value report projects an account's yearly average over this many more years.
CRM_LIFETIME_VALUE_YEARS = env.int("CRM_LIFETIME_VALUE_YEARS", default=3)
if not 0 <= CRM_LIFETIME_VALUE_YEARS <= 50:
    raise ImproperlyConfigured("CRM_LIFETIME_VALUE_YEARS must be between 0 and 50.")

# Request bodies other than uploaded files (JSON, form fields); larger ones are refused with 400/413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
# Uploaded files above this size go to a temporary file instead of memory (imports stream them).
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)

# The audit trail (django-simple-history) shows each record's versions in the admin; reverting one
# from there would skip the services' rules, so it is off.
SIMPLE_HISTORY_REVERT_DISABLED = True
# Change reasons name what changed in sets the history does not keep as fields (tags: old → new).
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# The cache holds the API throttles' counters, which every worker must share or N gunicorn workers
# allow N times the rate. CACHE_URL=redis://127.0.0.1:6379/1 uses Redis (Django's RedisCache), as
# production should. Without it: with DEBUG on (one development server) this process's memory; with
# DEBUG off the database's table crm_cache (created by `migrate`), shared by every worker. The deploy
# check warns about a per-process cache in production (crm.checks).
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}
    # Django's Redis cache, with its Redis client made once per pool (crm_project/cache.py).
    if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        CACHES["default"]["BACKEND"] = "crm_project.cache.RedisCache"
elif DEBUG:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "crm"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "crm_cache"}}
CRM_IMPORT_TMP_DIR = env.str("CRM_IMPORT_TMP_DIR", default="") or None

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a request without credentials a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token authentication, its query compiled once (crm.api.authentication).
        "crm.api.authentication.TokenAuthentication",
        # Integration keys (Authorization: Api-Key ...), acting as their user within their scopes.
        "crm.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Resource viewsets add Django's model permissions (crm.api.viewsets.ModelPermissions).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
    # Search and ordering live in each app's FilterSet, so the selectors share them.
    "DEFAULT_FILTER_BACKENDS": [
        "crm.api.framework.FilterBackend",
    ],
    # The API reads JSON bodies (a form can't say null or a list); the imports read their multipart file.
    # A body nested absurdly deep is a 400 (crm.api.parsers.DepthLimitedJSONParser).
    "DEFAULT_PARSER_CLASSES": ["crm.api.parsers.DepthLimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "crm.api.framework.ApiPagination",
    # DRF's JSON written by orjson (crm.api.renderers), and the browsable API.
    "DEFAULT_RENDERER_CLASSES": [
        "crm.api.renderers.OrjsonRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Per-user (per-address without credentials) request budgets; 429 with Retry-After beyond them.
    # DRF's, counted in one step in Redis (crm.api.throttling).
    "DEFAULT_THROTTLE_CLASSES": [
        "crm.api.throttling.AnonRateThrottle",
        "crm.api.throttling.UserRateThrottle",
        "crm.api.authentication.ApiKeyRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_RATE_ANON", default="60/minute"),
        "user": env.str("API_RATE_USER", default="1200/minute"),
        # Token requests (username + password) per address, besides django-axes' lockout.
        "token": env.str("API_RATE_TOKEN", default="10/minute"),
        # Requests per API key (crm.api.authentication.ApiKeyRateThrottle); a key may set its own rate.
        "api_key": env.str("API_RATE_KEY", default="600/minute"),
    },
    "EXCEPTION_HANDLER": "crm.api.framework.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CRM API",
    "DESCRIPTION": (
        "Leads, accounts, contacts, opportunities, pipelines and activities. Authenticate with a session "
        "(log in to the admin) or a token (`Authorization: Token <key>`, issued in the admin). Relations "
        "are read and written as `<name>_id` integers; money is a decimal string with two places. Bad "
        "input answers 400 with `{field: [messages]}`; a record's state forbidding an action answers "
        "409 with `{detail, code}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1/crm",
    # The docs page works on a closed network: Swagger UI and ReDoc are served from the project.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation also documents the errors the plumbing gives (400, 401, 403, 404, 409, 415, 429).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "crm.api.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PriorityEnum": "crm.models.Priority",
        "RatingEnum": "crm.models.Rating",
        "LeadStatusEnum": "crm.models.LeadStatus",
        "JobKindEnum": "crm.models.jobs.JobKind",
        "ReportColumnKindEnum": "crm.reports.COLUMN_KINDS",
        "NotificationKindEnum": "crm.models.notifications.NotificationKind",
        "LeadSourceEnum": "crm.models.LeadSource",
        "ConsentSourceEnum": "crm.models.ConsentSource",
        "AccountTypeEnum": "crm.models.AccountType",
        "AccountTierEnum": "crm.models.AccountTier",
        "IndustryEnum": "crm.models.Industry",
        "OpportunityStatusEnum": "sales.models.OpportunityStatus",
        "OpportunityTypeEnum": "sales.models.OpportunityType",
        "TerritoryRunStatusEnum": "sales.models.TerritoryRunStatus",
        "ActivityStatusEnum": "activities.models.ActivityStatus",
        "ActivityTypeEnum": "activities.models.ActivityType",
        "TicketMessageKindEnum": "activities.models.TicketMessageKind",
        "TicketStatusEnum": "activities.models.TicketStatus",
        "CampaignStatusEnum": "crm.models.CampaignStatus",
        "CampaignMemberStatusEnum": "crm.models.CampaignMemberStatus",
    },
}

# --- background work: Celery, the outbox of domain events, webhooks ------------------------------
# With no broker (the embedded default: `make run`, SQLite) tasks run in the web process right after
# the transaction that asked for them commits; production sets a Redis URL and runs
# `celery -A crm_project worker` and `celery -A crm_project beat`.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged once done, and a worker that dies mid-task hands it back: at least once.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task reserved per process: our tasks are batches (campaign sends, webhook deliveries, imports) that
# take a second or more, and a busy process holding the next batch of another chain leaves an idle one
# with nothing to do (10,000 campaign emails on two workers: 70 s with 4, see BENCHMARKS.md).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="crm")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request never waits long for a broker that is down: its events stay in the outbox.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": env.float("CELERY_BROKER_CONNECT_TIMEOUT", default=2.0),
    "socket_timeout": 5.0,
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_TASK_PUBLISH_RETRY = False
# Seconds a web process stops trying the broker after it failed once (events wait in the outbox).
CRM_BROKER_BACKOFF_SECONDS = env.float("CRM_BROKER_BACKOFF_SECONDS", default=10.0)

# Domain events: written to the outbox in the writing transaction (off only to measure their cost).
CRM_EVENTS_ENABLED = env.bool("CRM_EVENTS_ENABLED", default=True)
CRM_OUTBOX_BATCH = env.int("CRM_OUTBOX_BATCH", default=200)
CRM_OUTBOX_MAX_ATTEMPTS = env.int("CRM_OUTBOX_MAX_ATTEMPTS", default=10)

# Automation rules: how many rules may trigger one another in a chain before the next is stopped
# (and logged), the delays between retries of a run whose action failed, how long a worker holds a
# run before another may take it, and how many records one schedule firing runs over.
CRM_AUTOMATION_MAX_DEPTH = env.int("CRM_AUTOMATION_MAX_DEPTH", default=5)
CRM_AUTOMATION_RETRY_SECONDS = [
    int(s) for s in env.list("CRM_AUTOMATION_RETRY_SECONDS", default=["30", "300", "1800"])
]
CRM_AUTOMATION_LEASE_SECONDS = env.int("CRM_AUTOMATION_LEASE_SECONDS", default=300)
CRM_AUTOMATION_SCHEDULE_MAX_RECORDS = env.int("CRM_AUTOMATION_SCHEDULE_MAX_RECORDS", default=10000)

# Webhooks. Targets that resolve to private, loopback or link-local addresses are refused unless
# listed here (addresses or networks, e.g. 127.0.0.1 or 10.0.0.0/8).
WEBHOOK_ALLOWED_PRIVATE_TARGETS = env.list("WEBHOOK_ALLOWED_PRIVATE_TARGETS", default=[])
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0)
# The whole attempt (connect, send, read the answer) ends after this many seconds.
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
# A larger event is sent without its record and changes (`"truncated": true`).
WEBHOOK_MAX_PAYLOAD_BYTES = env.int("WEBHOOK_MAX_PAYLOAD_BYTES", default=256 * 1024)
# Bytes of an answer read at most (the rest is never downloaded) and kept in the delivery log.
WEBHOOK_MAX_RESPONSE_BYTES = env.int("WEBHOOK_MAX_RESPONSE_BYTES", default=64 * 1024)
WEBHOOK_RESPONSE_EXCERPT_BYTES = env.int("WEBHOOK_RESPONSE_EXCERPT_BYTES", default=1024)
# Seconds between a failed attempt and the next (exponential, about 20 hours in all).
WEBHOOK_RETRY_SCHEDULE = [
    int(seconds)
    for seconds in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["10", "60", "300", "1800", "7200", "21600", "43200"]
    )
]
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
WEBHOOK_MAX_REDIRECTS = env.int("WEBHOOK_MAX_REDIRECTS", default=3)
# Deliveries a worker's task claims and sends at once (kept-alive connections, one write of results).
WEBHOOK_DELIVERY_BATCH = env.int("WEBHOOK_DELIVERY_BATCH", default=50)
if (
    WEBHOOK_TIMEOUT <= 0
    or WEBHOOK_DELIVERY_BATCH < 1
    or WEBHOOK_DISABLE_AFTER_FAILURES < 1
    or any(s < 0 for s in WEBHOOK_RETRY_SCHEDULE)
):
    raise ImproperlyConfigured(
        "Webhook timeouts, retry delays, the batch size and the failure limit must be positive."
    )

# Background jobs. An import of more rows than CRM_IMPORT_SYNC_MAX_ROWS (by the file's row estimate)
# and an export of more than CRM_EXPORT_SYNC_MAX_ROWS records run as jobs; smaller ones answer at once.
# Their files (the upload a worker imports, the export it writes) go to the default storage under
# CRM_JOB_FILES_DIR, so the web processes and the workers must share it (MEDIA_ROOT on one disk or a
# shared volume, or a network storage backend).
CRM_IMPORT_SYNC_MAX_ROWS = env.int("CRM_IMPORT_SYNC_MAX_ROWS", default=5_000)
CRM_EXPORT_SYNC_MAX_ROWS = env.int("CRM_EXPORT_SYNC_MAX_ROWS", default=20_000)
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
CRM_JOB_FILES_DIR = env.str("CRM_JOB_FILES_DIR", default="crm-jobs").strip("/")
# Files on records (activities.Attachment): kept in the default storage under CRM_FILES_DIR, never served
# by a public URL. An upload larger than CRM_FILE_MAX_BYTES or of a type not in CRM_FILE_ALLOWED_TYPES
# (MIME types; "image/*" allows a family) is refused with a 400.
CRM_FILES_DIR = env.str("CRM_FILES_DIR", default="crm-files").strip("/")
CRM_FILE_MAX_BYTES = env.int("CRM_FILE_MAX_BYTES", default=10 * 1024 * 1024)
CRM_FILE_ALLOWED_TYPES = env.list(
    "CRM_FILE_ALLOWED_TYPES",
    default=[
        "application/pdf",
        "image/*",
        "text/plain",
        "text/csv",
        "application/zip",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "message/rfc822",
    ],
)
# Seconds between two progress writes of a running job; a job still queued after
# CRM_JOB_REQUEUE_AFTER seconds (the broker was down when it started) is queued again by beat.
# Email in: mailbox passwords are encrypted with Fernet keys (CRM_MAILBOX_KEYS, comma-separated; the first
# encrypts, all decrypt: put a new key first to rotate). Without keys (development) one is derived from
# SECRET_KEY, so changing SECRET_KEY then makes the stored passwords unreadable: set keys in production.
CRM_MAILBOX_KEYS = env.list("CRM_MAILBOX_KEYS", default=[])
# Mailboxes are polled every CRM_MAILBOX_POLL_SECONDS by beat; one poll reads at most this many messages
# of a mailbox (the rest on the next poll), CRM_MAILBOX_BATCH fetched per IMAP round trip.
CRM_MAILBOX_POLL_SECONDS = env.float("CRM_MAILBOX_POLL_SECONDS", default=120.0)
CRM_MAILBOX_POLL_MAX_MESSAGES = env.int("CRM_MAILBOX_POLL_MAX_MESSAGES", default=20_000)
CRM_MAILBOX_BATCH = env.int("CRM_MAILBOX_BATCH", default=200)
CRM_MAILBOX_TIMEOUT = env.float("CRM_MAILBOX_TIMEOUT", default=30.0)
# The two doors a mail forwarder posts raw RFC 822 messages to answer only requests carrying this secret:
# "BCC to the CRM" (POST /api/v1/crm/mailboxes/inbound/, header X-CRM-Inbound-Secret) and the service
# desk's intake (POST /api/v1/crm/inbound/email/, header X-Inbound-Secret); empty: both are off.
CRM_INBOUND_EMAIL_SECRET = env.str("CRM_INBOUND_EMAIL_SECRET", default="")
CRM_INBOUND_EMAIL_MAX_BYTES = env.int("CRM_INBOUND_EMAIL_MAX_BYTES", default=50 * 1024 * 1024)
CRM_JOB_PROGRESS_INTERVAL = env.float("CRM_JOB_PROGRESS_INTERVAL", default=0.5)
CRM_JOB_REQUEUE_AFTER = env.int("CRM_JOB_REQUEUE_AFTER", default=120)
# A running job's worker writes a heartbeat every CRM_JOB_HEARTBEAT seconds; without one for
# CRM_JOB_LEASE seconds the worker is taken for dead and the job runs again (PostgreSQL), at most
# CRM_JOB_MAX_ATTEMPTS runs in all. Finished jobs and their files are kept CRM_JOB_RETENTION_DAYS days.
# Without a broker the web process runs beat's schedule in a thread, checking every
# CRM_EMBEDDED_SCHEDULER_TICK seconds (CRM_EMBEDDED_SCHEDULER=false turns it off).
CRM_EMBEDDED_SCHEDULER = env.bool("CRM_EMBEDDED_SCHEDULER", default=True)
CRM_EMBEDDED_SCHEDULER_TICK = env.float("CRM_EMBEDDED_SCHEDULER_TICK", default=15.0)
CRM_JOB_HEARTBEAT = env.float("CRM_JOB_HEARTBEAT", default=15.0)
CRM_JOB_LEASE = env.int("CRM_JOB_LEASE", default=300)
CRM_JOB_MAX_ATTEMPTS = env.int("CRM_JOB_MAX_ATTEMPTS", default=3)
CRM_JOB_RETENTION_DAYS = env.int("CRM_JOB_RETENTION_DAYS", default=30)
if CRM_IMPORT_SYNC_MAX_ROWS < 0 or CRM_EXPORT_SYNC_MAX_ROWS < 0 or not CRM_JOB_FILES_DIR:
    raise ImproperlyConfigured("Job thresholds must be 0 or more and CRM_JOB_FILES_DIR must name a folder.")
if CRM_JOB_HEARTBEAT <= 0 or CRM_JOB_LEASE <= CRM_JOB_HEARTBEAT or CRM_JOB_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured(
        "CRM_JOB_LEASE must be longer than CRM_JOB_HEARTBEAT, and attempts at least 1."
    )
if CRM_JOB_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("CRM_JOB_RETENTION_DAYS must be 1 or more.")

# Privacy: leads lost, or open without a change or an activity, for more than CRM_RETENTION_MONTHS
# months are anonymised by the nightly "privacy-retention" task. 0 (the default) keeps them.
CRM_RETENTION_MONTHS = env.int("CRM_RETENTION_MONTHS", default=0)
if CRM_RETENTION_MONTHS < 0:
    raise ImproperlyConfigured("CRM_RETENTION_MONTHS must be 0 (off) or a number of months.")

# Email (notifications): EMAIL_URL such as smtp+tls://user:password@smtp.example.com:587 or
# EMAIL_HOST/EMAIL_PORT/...; without either, emails are written to the console (development).
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_HOST = env.str("EMAIL_HOST", default="")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        default="django.core.mail.backends.smtp.EmailBackend"
        if EMAIL_HOST
        else "django.core.mail.backends.console.EmailBackend",
    )
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="crm@localhost")
# The local hour (in each user's time zone) of the daily digest of their overdue and today's activities.
CRM_DIGEST_HOUR = env.int("CRM_DIGEST_HOUR", default=8)
if not 0 <= CRM_DIGEST_HOUR <= 23:
    raise ImproperlyConfigured("CRM_DIGEST_HOUR is an hour of the day: 0 to 23.")
# The address people open the CRM at, for the links in notification emails.
CRM_BASE_URL = env.str("CRM_BASE_URL", default="http://127.0.0.1:8000")

# Quotes: the company printed on them, how long they stay valid, the public acceptance link.
CRM_COMPANY_NAME = env.str("CRM_COMPANY_NAME", default="Your Company")
CRM_COMPANY_ADDRESS = env.str("CRM_COMPANY_ADDRESS", default="")  # lines separated by "\n" or " | "
CRM_COMPANY_LOGO = env.str("CRM_COMPANY_LOGO", default="")  # path to an image file (PNG, JPEG, SVG)
CRM_QUOTE_VALIDITY_DAYS = env.int("CRM_QUOTE_VALIDITY_DAYS", default=30)
CRM_QUOTE_LINK_MAX_AGE = env.int("CRM_QUOTE_LINK_MAX_AGE", default=60 * 60 * 24 * 45)  # seconds
# Where an accepted quote moves its deal: "won" (mark won) or the name of a stage of its pipeline.
CRM_QUOTE_ACCEPTED_STAGE = env.str("CRM_QUOTE_ACCEPTED_STAGE", default="won")
# Requests per address to the public quote pages, per minute.
CRM_QUOTE_PUBLIC_RATE = env.int("CRM_QUOTE_PUBLIC_RATE", default=30)
if CRM_QUOTE_VALIDITY_DAYS < 1 or CRM_QUOTE_LINK_MAX_AGE < 60 or CRM_QUOTE_PUBLIC_RATE < 1:
    raise ImproperlyConfigured("Quote validity, link age and public rate must be positive.")

# Customer service intake: the public support form's requests per address per minute (the inbound
# email door shares CRM_INBOUND_EMAIL_SECRET and CRM_INBOUND_EMAIL_MAX_BYTES above).
CRM_SUPPORT_FORM_RATE = env.int("CRM_SUPPORT_FORM_RATE", default=5)
CRM_SUPPORT_EMAIL = env.str("CRM_SUPPORT_EMAIL", default="")  # the From of replies; empty: DEFAULT_FROM_EMAIL
if CRM_SUPPORT_FORM_RATE < 1 or CRM_INBOUND_EMAIL_MAX_BYTES < 1024:
    raise ImproperlyConfigured(
        "CRM_SUPPORT_FORM_RATE must be positive, CRM_INBOUND_EMAIL_MAX_BYTES at least 1024."
    )
# Satisfaction surveys: how long the signed rating link sent when a ticket is resolved stays valid.
CRM_SURVEY_LINK_MAX_AGE_DAYS = env.int("CRM_SURVEY_LINK_MAX_AGE_DAYS", default=14)
if CRM_SURVEY_LINK_MAX_AGE_DAYS < 1:
    raise ImproperlyConfigured("CRM_SURVEY_LINK_MAX_AGE_DAYS must be at least 1.")
# Email campaigns: messages per batch (one SMTP connection each), the most sent per minute across all
# workers (0: as fast as they go), how many batches run at once, and how long the signed unsubscribe
# and tracking links in a message stay valid (seconds).
CRM_CAMPAIGN_BATCH_SIZE = env.int("CRM_CAMPAIGN_BATCH_SIZE", default=100)
CRM_CAMPAIGN_RATE_PER_MINUTE = env.int("CRM_CAMPAIGN_RATE_PER_MINUTE", default=0)
CRM_CAMPAIGN_CONCURRENCY = env.int("CRM_CAMPAIGN_CONCURRENCY", default=2)
CRM_CAMPAIGN_LINK_MAX_AGE = env.int("CRM_CAMPAIGN_LINK_MAX_AGE", default=60 * 60 * 24 * 365)
if CRM_CAMPAIGN_BATCH_SIZE < 1 or CRM_CAMPAIGN_RATE_PER_MINUTE < 0 or CRM_CAMPAIGN_CONCURRENCY < 1:
    raise ImproperlyConfigured("Campaign batch size and concurrency must be positive, the rate 0 or more.")
if CRM_CAMPAIGN_LINK_MAX_AGE < 60:
    raise ImproperlyConfigured("CRM_CAMPAIGN_LINK_MAX_AGE is in seconds: 60 or more.")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "logfmt": {"()": "crm_project.logging.LogfmtFormatter"},
    },
    "filters": {
        "request_id": {"()": "crm_project.logging.RequestIdFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "logfmt", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # Quote PDFs: WeasyPrint and fontTools log every font they subset.
        "weasyprint": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "fontTools": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# Prometheus metrics at /metrics (crm_project/observability.py): for a scraper holding this bearer token,
# or calling from one of these addresses; with neither set, /metrics is a 404.
CRM_METRICS_TOKEN = env.str("CRM_METRICS_TOKEN", default="")
CRM_METRICS_ALLOWED_IPS = env.list("CRM_METRICS_ALLOWED_IPS", default=[])

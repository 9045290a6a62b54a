"""One settings module; everything that differs between machines comes from the environment.

With no variables set the portal runs on embedded defaults: SQLite under var/, kombu's
filesystem transport as the broker, and whatever AWS endpoint boto3 finds (make run points
AWS_ENDPOINT_URL at the moto sandbox).
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from peering_portal.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", True)
_INSECURE_KEY = "django-insecure-peering-portal-development-only"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _INSECURE_KEY)
if not DEBUG and (SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG=0 needs a real DJANGO_SECRET_KEY (at least 32 characters, not the development key)"
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "requests_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "requests_app.web.middleware.ApiJsonErrorsMiddleware",
    # After the JSON errors one, so its 400 is answered in the API's shape under /api/.
    "requests_app.web.middleware.RefuseNullBytesMiddleware",
    "requests_app.web.middleware.RequestIdLoggingMiddleware",
    "requests_app.web.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "peering_portal.urls"
WSGI_APPLICATION = "peering_portal.wsgi.application"

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
                "requests_app.web.context_processors.navigation",
            ]
        },
    }
]

# --- Database -----------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "portal.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{SQLITE_PATH}"), conn_max_age=env_int("DB_CONN_MAX_AGE", 0)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker share the file: WAL lets readers run beside the writer, and IMMEDIATE
    # takes the write lock at BEGIN so two writers queue instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # A file, not memory, so the test run's worker process sees the test database too.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request until collectstatic has run
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

AUTHENTICATION_BACKENDS = ["requests_app.core.logins.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env_int("LOGIN_FAILURE_LIMIT_PER_ADDRESS", 50, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Password reset e-mails: each one goes to an inbox the sender need not own, so they are limited per
# e-mail address (5 an hour) and per client address (more: one office may sit behind one address).
PASSWORD_RESET_LIMIT_PER_EMAIL = env_int("PASSWORD_RESET_LIMIT_PER_EMAIL", 5, minimum=1)
PASSWORD_RESET_LIMIT_PER_ADDRESS = env_int("PASSWORD_RESET_LIMIT_PER_ADDRESS", 20, minimum=1)
PASSWORD_RESET_WINDOW_SECONDS = env_int("PASSWORD_RESET_WINDOW_SECONDS", 3600, minimum=1)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# No inline scripts anywhere; the portal's pages have no inline styles either. The admin and the
# API docs (Swagger UI, Redoc) style elements inline and Redoc runs a worker from a blob.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CONTENT_SECURITY_POLICY_RELAXED = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
).replace("connect-src 'self'", "connect-src 'self'; worker-src 'self' blob:")
CSP_RELAXED_PATHS = ["/admin/", "/api/docs/", "/api/redoc/"]
# Behind a reverse proxy the client's address is the one the proxies report in X-Forwarded-For,
# read from the right: each of the TRUSTED_PROXY_COUNT proxies appends the address it saw, and
# anything further left was written by the client. Never trust the header otherwise: any client
# could claim any address and so escape the rate limits and the login lockout.
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", 1, minimum=1)
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if BEHIND_PROXY:
        # Only behind a proxy that sets it: otherwise any client could claim https.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "peering-portal@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
# The portal's address as users reach it, for links in notification emails.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000")

LOG_FORMAT = env_str("LOG_FORMAT", "plain")  # or "json": one object per line
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "requests_app.core.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        # One JSON object per line, for log pipelines: python-json-logger, with our key names.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger", "exc_info": "exception"},
            "timestamp": "time",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}
# /metrics is for signed-in staff, and for `Authorization: Bearer <METRICS_TOKEN>` when that is set.
# METRICS_PUBLIC=1 opens it to anyone, for a scraper on a private network that cannot send a token.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)

# --- REST API -----------------------------------------------------------------------------
# The cache holds the API's rate-limit counters, so every web process must share it: Redis
# (CACHE_URL=redis://…) across hosts, or by default files under var/cache on one host.
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "requests_app.integrations.tokens.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "requests_app.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "requests_app.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "requests_app.api.throttling.AnonRateThrottle",
        "requests_app.api.throttling.TokenAndUserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
        "token": env_str("API_THROTTLE_TOKEN", "600/min"),
        "user": env_str("API_THROTTLE_USER", "1200/min"),
        # Each verification reads the whole audit chain.
        "audit_verify": env_str("API_THROTTLE_AUDIT_VERIFY", "6/min"),
    },
    # Our throttles identify clients with requests_app.core.logins.client_address; this keeps any of
    # DRF's own (which read NUM_PROXIES) in step with it. None would trust X-Forwarded-For blindly.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT if BEHIND_PROXY else 0,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "requests_app.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Peering Portal API",
    "DESCRIPTION": "Self-service, audited AWS VPC peering: file, approve, provision, decommission.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "requests_app.api.schema.add_common_responses",
    ],
}

# --- Celery -------------------------------------------------------------------------------
BROKER_DIR = Path(env_str("CELERY_FILESYSTEM_DIR", str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.25,
    }
else:
    # Redis redelivers an unacknowledged message after the visibility timeout; every task
    # limit below must stay under it (checked in peering_portal/celery.py at start-up).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=30)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 30, CELERY_TASK_TIME_LIMIT // 2)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 300, minimum=5)
# How often the sweeper looks for work nobody is doing (never less often than the reconciler):
# with the default 30-second leases, a dead worker's request is taken over within
# WORK_LEASE_SECONDS + SWEEP_INTERVAL_SECONDS, 45 s (docs/reliability.md).
SWEEP_INTERVAL_SECONDS = min(env_int("SWEEP_INTERVAL_SECONDS", 15, minimum=1), RECONCILE_INTERVAL_SECONDS)
# The audit chain's HMAC key, from the secrets manager; never in the database. Unset: derived
# from SECRET_KEY (requests_app.audit.chain.chain_key), which then changes whenever SECRET_KEY does.
AUDIT_CHAIN_KEY = env_str("AUDIT_CHAIN_KEY", "")
# Keys the chain was signed with before a rotation, oldest first.
AUDIT_CHAIN_KEYS_PREVIOUS = env_list("AUDIT_CHAIN_KEYS_PREVIOUS", [])
# Signed anchors of the chain head, JSON Lines: keep on storage the database host cannot rewrite.
AUDIT_ANCHOR_FILE = env_str("AUDIT_ANCHOR_FILE", str(VAR_DIR / "audit-anchors.jsonl"))
AUDIT_ANCHOR_INTERVAL_SECONDS = env_int("AUDIT_ANCHOR_INTERVAL_SECONDS", 3600, minimum=60)
CELERY_BEAT_SCHEDULE = {
    "anchor-audit-chain": {
        "task": "requests_app.tasks.anchor_audit_chain",
        "schedule": float(AUDIT_ANCHOR_INTERVAL_SECONDS),
    },
    "sweep-stuck-work": {
        "task": "requests_app.tasks.sweep_stuck_work",
        "schedule": float(SWEEP_INTERVAL_SECONDS),
    },
    "reconcile-active-requests": {
        "task": "requests_app.tasks.reconcile_active_requests",
        "schedule": float(RECONCILE_INTERVAL_SECONDS),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- The portal ---------------------------------------------------------------------------
# boto3 reads AWS_ENDPOINT_URL itself; it is recorded here only to show it on /healthz.
AWS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL", "")
AWS_DEFAULT_REGION = env_str("AWS_DEFAULT_REGION", "us-east-1")
# The identity the portal runs as, for the trust policies `manage.py iam_policy` prints.
PORTAL_AWS_PRINCIPAL = env_str("PORTAL_AWS_PRINCIPAL", "arn:aws:iam::<portal-account-id>:role/<portal-identity>")
# EC2 request-rate buckets the portal keeps per account and region, shared by every worker
# ("burst,per-second"; "0" switches one off): under AWS's own, so the portal is never the one
# that gets an account throttled.
EC2_RATE_PEERING = env_str("EC2_RATE_PEERING", "50,5")
EC2_RATE_MUTATING = env_str("EC2_RATE_MUTATING", "50,5")
EC2_RATE_DESCRIBE = env_str("EC2_RATE_DESCRIBE", "100,20")
# Optional JSON Lines trace of every EC2 call the portal makes (operation, account, region, parameters).
AWS_CALL_LOG = env_str("AWS_CALL_LOG", "")
# How long provisioning waits for a fresh peering connection to become visible.
PEERING_VISIBILITY_TIMEOUT_SECONDS = env_int("PEERING_VISIBILITY_TIMEOUT_SECONDS", 60, minimum=1)
# A worker's lease on a request, renewed every third of it by a heartbeat while the work runs
# (however long AWS takes); past it (a dead worker), or past the pick-up deadline of queued
# work (a lost message), the sweeper sends the work again: recovered within a minute.
WORK_LEASE_SECONDS = env_int("WORK_LEASE_SECONDS", 30, minimum=6)
PROVISIONING_MAX_RETRIES = env_int("PROVISIONING_MAX_RETRIES", 6, minimum=0)
# A request whose task was delivered this many times without finishing (a task that kills its
# worker every time) ends `failed` for an operator instead of looping.
MAX_TASK_DELIVERIES = env_int("MAX_TASK_DELIVERIES", 12, minimum=2)
# Like AWS's own expiry of a pending-acceptance connection.
# Approvers see requests waiting longer than this flagged as overdue.
APPROVAL_SLA_HOURS = env_int("APPROVAL_SLA_HOURS", 24, minimum=1)
PENDING_APPROVAL_TTL_SECONDS = env_int("PENDING_APPROVAL_TTL_SECONDS", 7 * 24 * 3600, minimum=60)
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
# Tokens from POST /api/v1/auth/token/ expire after this many days (0: never); named tokens
# made at /api/v1/tokens/ choose their own expiry.
API_TOKEN_DEFAULT_TTL_DAYS = env_int("API_TOKEN_DEFAULT_TTL_DAYS", 90, minimum=0)
# Live (unrevoked, unexpired) tokens one user may hold, across both ways of making them.
API_TOKENS_PER_USER = env_int("API_TOKENS_PER_USER", 25, minimum=1)
# Webhook deliveries: attempt n+1 waits base * 3^(n-1) seconds (capped at an hour), at most
# WEBHOOK_MAX_ATTEMPTS attempts (8 spans about two hours); each POST times out after WEBHOOK_TIMEOUT_SECONDS.
WEBHOOK_RETRY_BASE_SECONDS = float(env_str("WEBHOOK_RETRY_BASE_SECONDS", "10"))
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
# Checks warn when the inventory they used is older than this.
INVENTORY_MAX_AGE_SECONDS = env_int("INVENTORY_MAX_AGE_SECONDS", 24 * 3600, minimum=60)
PEERING_TAG_KEY = "peering-portal:request-id"

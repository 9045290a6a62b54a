from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Peering requests"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Peering requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django wants: models are not ready when this module loads.
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_save

        from requests_app.integrations import tokens

        pre_save.connect(tokens.end_with_password, sender=get_user_model(), dispatch_uid="tokens-end-with-password")

from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Peering requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django wants: models are not ready when this module loads.
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save, pre_save

        from requests_app.integrations import tokens

        user_model = get_user_model()
        pre_save.connect(tokens.note_new_password, sender=user_model, dispatch_uid="tokens-note-new-password")
        post_save.connect(tokens.end_with_password, sender=user_model, dispatch_uid="tokens-end-with-password")

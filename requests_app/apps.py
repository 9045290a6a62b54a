from django.apps import AppConfig
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Peering requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # No cycle to dodge: Django imports this module while it is still loading the apps, before
        # any model class may be defined, and the tokens module defines its queries on models. So
        # it is imported once the registry is ready, where Django's docs connect signals.
        from requests_app.integrations import tokens

        user_model = get_user_model()
        pre_save.connect(tokens.note_new_password, sender=user_model, dispatch_uid="tokens-note-new-password")
        post_save.connect(tokens.end_with_password, sender=user_model, dispatch_uid="tokens-end-with-password")

"""Label Studio's URLs plus medgen's page for changing one's own password (Community has none)."""

from core.urls import urlpatterns as label_studio_urls
from django.urls import path

from annotation.ls_roles import PASSWORD_PATH, password_change

urlpatterns = [path(PASSWORD_PATH, password_change, name="medgen-password"), *label_studio_urls]

"""Label Studio's settings plus medgen's role check: the settings module of the server `annotate serve` starts.

``DJANGO_SETTINGS_MODULE=annotation.ls_settings`` (set by ``annotation.server``): Label Studio's own
settings, then ``annotation.ls_roles.RoleMiddleware`` last (after Label Studio's session, token and JWT
authentication) and a URL conf that adds medgen's password page. Imports nothing from medgen.
"""

import os

# Label Studio's settings read django.conf.settings while they load (Sentry, versions): during that
# import Django must configure itself from Label Studio's module, which defines what it reads before
# reading it; Django then builds the settings it keeps from this module, once it has loaded.
os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
from label_studio.core.settings.label_studio import *  # noqa: E402, F403

os.environ["DJANGO_SETTINGS_MODULE"] = __name__

MIDDLEWARE = [*MIDDLEWARE, "annotation.ls_roles.RoleMiddleware"]  # noqa: F405
ROOT_URLCONF = "annotation.ls_urls"
MEDGEN_ROLES = True
"""Marks a server that enforces medgen's roles."""

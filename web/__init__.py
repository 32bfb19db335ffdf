"""The Flask front end: validates input, records jobs, enqueues them, and answers polls.

    flask --app web run
    gunicorn "web:create_app()"

It never runs the model (and never imports TensorFlow).
"""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from jobs import tracing
from settings import get_settings
from web import (
    api,
    config,
    errors,
    feedback_api,
    forms,
    health,
    inference_protocol,
    json_provider,
    metrics,
    models_api,
    openapi,
    pages,
    ratelimit,
    request_log,
    security,
    services,
)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app from the settings (settings.py), with ``test_config`` on top: names of settings
    (``{"RATE_LIMIT": ""}``) override those, anything else goes to Flask's configuration."""
    test_config = test_config or {}
    settings = get_settings().overridden(test_config)
    if settings.digits_api_token and not settings.digits_admin_token:
        logging.getLogger(__name__).warning("DIGITS_API_TOKEN is deprecated; set DIGITS_ADMIN_TOKEN instead")
    app = Flask(__name__)
    app.request_class = forms.FormRequest
    app.json = json_provider.JSONProvider(app)
    if settings.proxies:  # the client's address and scheme as the proxies in front saw them
        hops = settings.proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.config.from_mapping(config.flask_config(settings))
    app.config.from_mapping({k: v for k, v in test_config.items() if k not in settings.variables()})
    services.init_app(app, settings)
    request_log.init_app(app)
    errors.init_app(app)
    # The JSON API is token-authenticated, not cookie-authenticated: no CSRF tokens there.
    security.init_app(app, exempt_blueprints=(api.bp, feedback_api.bp, models_api.bp, health.bp, inference_protocol.bp))
    metrics.init_app(app)  # its timer starts before the rate limit's check runs
    ratelimit.init_app(app)
    for blueprint in (pages.bp, health.bp, api.bp, feedback_api.bp, models_api.bp, inference_protocol.bp, openapi.bp):
        app.register_blueprint(blueprint)
    # Made in each gunicorn process (never before the fork: the exporter's thread would not survive it).
    tracing.set_up("digits-web", celery=True)
    tracing.instrument_flask(app)
    return app

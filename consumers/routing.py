from channels.routing import URLRouter
from channels.sessions import CookieMiddleware
from django.urls import path

from .auth import WebsocketAuthMiddleware
from .predictions import StockPredictionsConsumer
from .realtime import RealtimeConsumer

websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
    path("ws/stock_predictions/", StockPredictionsConsumer.as_asgi()),
]

websocket_application = CookieMiddleware(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns)))

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

from .auth import TokenAuthMiddleware
from .predictions import StockPredictionsConsumer
from .realtime import RealtimeConsumer

websocket_urlpatterns = [
    path("ws/realtime/", RealtimeConsumer.as_asgi()),
    path("ws/stock_predictions/", StockPredictionsConsumer.as_asgi()),
]

websocket_application = AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))

"""API tokens for scripts and integrations: POST a username and password, get the user's token.

The credentials go through ``authenticate(request=...)``, so django-axes counts the failures and
locks the username + address out exactly as it does on the admin login; a throttle bounds the
attempts per address besides.
"""

import math

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.throttling import ScopedRateThrottle
from crm.api.viewsets import BAD_REQUEST, DetailSerializer

BAD_CREDENTIALS = "Unable to log in with these credentials."
LOCKED_OUT = "Too many failed logins for this username: try again later."


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")


class TokenThrottle(ScopedRateThrottle):
    scope_attr = "throttle_scope"


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenThrottle]
    throttle_scope = "token"

    @extend_schema(
        summary="Get an API token",
        description="The token of the user with these credentials (created on first use). Repeated "
        "failures lock the username out for a while (429), as on the admin login.",
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: BAD_REQUEST,
            429: OpenApiResponse(DetailSerializer, description="Locked out, or too many attempts."),
        },
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The Django request: django-axes reads the address from it and marks a lockout on it.
        django_request = request._request
        user = authenticate(request=django_request, **serializer.validated_data)
        if getattr(django_request, "axes_locked_out", False):
            # Answered here in the API's JSON shape; unmarked, AxesMiddleware leaves this response alone
            # instead of swapping in the admin's HTML lockout page.
            django_request.axes_locked_out = False
            cooloff = settings.AXES_COOLOFF_TIME  # hours
            return Response(
                {"detail": LOCKED_OUT},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(math.ceil(float(cooloff) * 3600))},
            )
        if user is None or not user.is_active:
            return Response({"non_field_errors": [BAD_CREDENTIALS]}, status=status.HTTP_400_BAD_REQUEST)
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

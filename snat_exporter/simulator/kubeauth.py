"""TokenReview and SubjectAccessReview for the fake Kubernetes API server, in the objects' real JSON shape.

What an exporter with ``auth: kubernetes`` asks: ``POST /apis/authentication.k8s.io/v1/tokenreviews`` (whose token
is this?) and ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` (may this user ``get`` this non-resource
URL?). Tests register tokens and grants, count the reviews, and make the reviews fail with a status.

The answers follow the API reference and what kube-apiserver sends: ``201 Created`` with the request object echoed
and a ``status``; an unknown token is ``authenticated`` omitted with an ``error``; a review without a spec is a
``400`` Status.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from snat_exporter.simulator.kubeselect import status_body

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECTACCESSREVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
AUDIENCE = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class User:
    username: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    groups: tuple[str, ...] = ("system:authenticated",)
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        return cls(
            username=f"system:serviceaccount:{namespace}:{name}",
            groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
            extra={"authentication.kubernetes.io/pod-name": [f"{name}-0"]},
        )

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "uid": self.uid, "groups": list(self.groups)}
        if self.extra:
            out["extra"] = copy.deepcopy(self.extra)
        return out


class KubeAuth:
    """Tokens and RBAC grants of the fake API server (non-resource URLs only: what the exporter asks about)."""

    def __init__(self) -> None:
        self.tokens: dict[str, User] = {}
        self.grants: set[tuple[str, str, str]] = set()  # (user or group, verb, path)
        self.reviews: Counter[str] = Counter()  # "tokenreview" / "subjectaccessreview" -> count
        self.requests: list[dict[str, Any]] = []  # every review object received, for tests to inspect
        self._failure: int | None = None

    def install(self, app: web.Application) -> None:
        app.router.add_post(TOKENREVIEWS, self._token_review)
        app.router.add_post(SUBJECTACCESSREVIEWS, self._access_review)

    # ---------------------------------------------------------------------------------------- test API
    def add_token(self, token: str, user: User) -> None:
        self.tokens[token] = user

    def grant(self, subject: str, paths: Iterable[str] = ("/metrics",), verb: str = "get") -> None:
        """As a ClusterRole with ``nonResourceURLs: [paths]`` and ``verbs: [verb]`` bound to a user or group."""
        for path in paths:
            self.grants.add((subject, verb, path))

    def fail(self, status: int | None) -> None:
        """Answer every review with this status (None: answer normally again)."""
        self._failure = status

    # --------------------------------------------------------------------------------------- handlers
    async def _read(self, request: web.Request, kind: str, api_version: str) -> dict[str, Any] | web.Response:
        self.reviews[kind.lower()] += 1
        if self._failure is not None:
            return web.json_response(
                status_body(self._failure, "InternalError", f"simulated failure {self._failure}"), status=self._failure
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response(status_body(400, "BadRequest", "the body is not JSON"), status=400)
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            return web.json_response(status_body(400, "BadRequest", f'{kind} in version "v1" needs a spec'), status=400)
        self.requests.append(copy.deepcopy(body))
        body["kind"], body["apiVersion"] = kind, api_version
        body.setdefault("metadata", {})["creationTimestamp"] = None
        return body

    async def _token_review(self, request: web.Request) -> web.Response:
        body = await self._read(request, "TokenReview", "authentication.k8s.io/v1")
        if isinstance(body, web.Response):
            return body
        user = self.tokens.get(str(body["spec"].get("token") or ""))
        if user is None:
            # What kube-apiserver says about a token no authenticator accepts: not authenticated, an error, no user.
            body["status"] = {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
        else:
            body["status"] = {"authenticated": True, "user": user.json(), "audiences": [AUDIENCE]}
        return web.json_response(body, status=201)

    async def _access_review(self, request: web.Request) -> web.Response:
        body = await self._read(request, "SubjectAccessReview", "authorization.k8s.io/v1")
        if isinstance(body, web.Response):
            return body
        spec = body["spec"]
        attributes = spec.get("nonResourceAttributes")
        if not spec.get("user") and not spec.get("groups"):
            message = 'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at least one of user or group must be specified'
            return web.json_response(status_body(422, "Invalid", message), status=422)
        if not isinstance(attributes, dict) and not isinstance(spec.get("resourceAttributes"), dict):
            message = 'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified'
            return web.json_response(status_body(422, "Invalid", message), status=422)
        subjects = {str(spec.get("user") or "")} | {str(g) for g in spec.get("groups") or []}
        allowed = False
        if isinstance(attributes, dict):
            verb, path = str(attributes.get("verb") or ""), str(attributes.get("path") or "")
            allowed = any((s, verb, path) in self.grants for s in subjects)
        if allowed:
            body["status"] = {"allowed": True, "reason": "RBAC: allowed by ClusterRoleBinding of ClusterRole"}
        else:
            body["status"] = {"allowed": False}
        return web.json_response(body, status=201)

from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`limit`/`offset` with a `count`; a limit above 500 is served as 500 (never an overflow)."""

    default_limit = 50
    max_limit = 500

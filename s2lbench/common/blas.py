"""Scoped BLAS thread limits (shared by k-means seeding and the greedy selectors)."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def single_threaded_blas():
    """For loops of many small products (greedy gains, k-means++ seeding): threaded OpenBLAS is up to 50x
    slower at those sizes on a busy machine. Scoped, so nothing changes outside the loop."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield

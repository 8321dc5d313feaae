"""The log lines the layers under the API say while a request is answered, rationed by the server's LogBudget as its
own are: memory.py's "already a view" at each upload of a photo stored before, the assistant's "no reference photo"
at each question about such a concept, the encoder cache's and references.py's warnings. A client repeating a
request 10 000 times wrote 10 000 lines. Rather than thread the budget through every layer, the request's budget is
in a context variable set around it (`Answering`, which anyio's threads and the streamed answer's inherit), and a
filter on the log's handlers, attached for the server's lifetime, judges each line said under one: its kind is the
line of code that said it (bounded by the code, whatever a message holds), its caller's for a wrapper's line
(`SaidOnce`'s, said with `stacklevel`: each part it says was one kind, rationing the others out), or the kind it
names (`KIND`: the guard's one line for each fault of the token file). A line said outside a request (the CLI,
`run`'s camera loop and voice beside the server) is never rationed."""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar

from edge_rap.serve.log_budget import JUDGED, KIND, LogBudget
from edge_rap.serve.uploads import Labelled

#: The budget of the request being answered in this context; None outside any.
_ANSWERING: ContextVar[LogBudget | None] = ContextVar("edge_rap_answering", default=None)


class Answering:
    """ASGI middleware: each request answered with `said` as the budget of the lines said meanwhile."""

    def __init__(self, app, said: LogBudget):
        self.app, self.said = app, said

    async def __call__(self, scope, receive, send) -> None:
        token = _ANSWERING.set(self.said)
        try:
            await self.app(scope, receive, send)
        finally:
            _ANSWERING.reset(token)


class RequestLines(logging.Filter):
    """A handler's filter: a line said while a request is answered passes if its kind has a line left, with how many
    were left out before it; judged once, whatever number of handlers it reaches (JUDGED: the budget's own lines are
    judged already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        judged = getattr(record, JUDGED, None)
        if judged is None:
            budget = _ANSWERING.get()
            kind = getattr(record, KIND, (record.pathname, record.lineno))
            more = "" if budget is None else budget.admit(kind, lambda more: _said_later(record, more))
            if more is None:  # the last left out is said without its traceback, as LogBudget says one: not held
                record.exc_info = record.exc_text = record.stack_info = None
            elif more:
                record.msg = f"{record.msg}{more}"
            judged = more is not None
            setattr(record, JUDGED, judged)
        return judged


def _said_later(record: logging.LogRecord, more: str) -> None:
    """A line left out said as the last of its kind."""
    record.msg = f"{record.msg}{more}"
    setattr(record, JUDGED, True)
    logging.getLogger(record.name).handle(record)


_LABELLED = Labelled()
#: On each handler in this order: a line kept to be said later (`_said_later`) names an upload as its client does.
_FILTERS = (_LABELLED, RequestLines())
#: uvicorn's logger of errors, whose lines reach its own handler, not the root's: labelled by a filter of the logger's
#: (its traceback after a 500 named the upload that failed by its temporary path).
_UVICORN = "uvicorn.error"
_servers = 0  # those running in this process: the filters stay on the handlers while one does
_lock = threading.Lock()


def attach() -> None:
    """The filters on the root logger's handlers (those the CLI set up: every edge_rap line reaches them), and the
    labels on uvicorn's, as a server starts."""
    global _servers
    with _lock:
        _servers += 1
        logging.getLogger(_UVICORN).addFilter(_LABELLED)  # (once: a filter already there is not added again)
        for handler in logging.getLogger().handlers:
            for line_filter in _FILTERS:
                if line_filter not in handler.filters:
                    handler.addFilter(line_filter)


def detach() -> None:
    """The filters off the handlers once the last server in this process stopped."""
    global _servers
    with _lock:
        _servers -= 1
        if _servers == 0:
            logging.getLogger(_UVICORN).removeFilter(_LABELLED)
            for handler in logging.getLogger().handlers:
                for line_filter in _FILTERS:
                    handler.removeFilter(line_filter)

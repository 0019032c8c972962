"""The simulated depository bank (存管银行) as a service of its own: its own process, its own database.

The engine talks to it only over a small HTTP/JSON protocol, the one a real bank-gateway adapter follows
(``callcenter/adapters/bank_http.py`` is the engine's client). Amounts are integer fen; ``reference`` is the
engine's transfer reference (流水号) and every call is idempotent on it::

    POST /v1/transfers/in              {reference, account_no, amount_fen}   银行转证券: the bank debits the
                                                                             client's bank account
    POST /v1/transfers/out             {reference, account_no, amount_fen}   证券转银行: the bank credits it
        -> 200 {reference, status: applied|rejected|cancelled, code, direction, account_no, amount_fen,
                business_day, at, replayed}
           the same reference again returns the first answer (replayed: true); the same reference with
           another body is 409 {error: reference_conflict}
    GET  /v1/transfers/{reference}     -> 200 {status: applied|rejected|cancelled|unknown, ...}
    POST /v1/transfers/{reference}/cancel
                                       -> 200 the reference can never apply from now on; answers the state
                                          it ends in (applied when it already had)
    GET  /v1/statements/{YYYY-MM-DD}   -> 200 {business_day, entries: [{reference, account_no, amount_fen
                                          (signed, as the client's bank account sees it), at}], total_fen}
    GET  /v1/accounts/{account_no}     -> 200 {account_no, balance_fen} | 404
    GET  /v1/sim/accounts              -> 200 {accounts: [{account_no, balance_fen}]}   (simulator only)
    POST /v1/sim/accounts              {accounts: [{account_no, balance_fen}]} -> {opened, existing}
                                          (simulator only: open if absent, as the demo seed and tests do)
    GET  /healthz

Faults are injected from settings (``bank_fault_*``): refuse, time out before applying, time out after
applying, go down (the process dies). Modules: ``books`` (tables and rules), ``faults``, ``protocol`` (the
routes as a pure function), ``server`` (Starlette + uvicorn, ``callcenter bank serve``), ``inprocess`` (the
same protocol through an ``httpx.MockTransport``, for tests and benchmarks), ``runner`` (the bank process
beside the engine in ``callcenter run``).
"""

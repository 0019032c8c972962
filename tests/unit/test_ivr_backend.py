from concurrent.futures import ThreadPoolExecutor

from callcenter.ivr.backend import demo_backend

ACCOUNT = "1234567890123456"


def test_simultaneous_wrong_pins_cannot_race_the_lockout_counter():
    backend = demo_backend()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: backend.authenticate(ACCOUNT, "000000", "1", f"call-{i}").outcome, range(8)))
    assert results.count("wrong_pin") == 4 and results.count("locked") == 4
    assert backend.authenticate(ACCOUNT, "123456", "1", "call-x").outcome == "locked"


def test_transfer_is_applied_once_per_idempotency_key():
    backend = demo_backend()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: backend.transfer("C-1001", "FA-1", "broker_to_bank", 100, "call-1:12",
                                                           "ivr-agi", "1"), range(8)))
    assert len(backend.transfers) == 1 and len({r.reference for r in results}) == 1


def test_per_call_limit_in_the_backend_too():
    backend = demo_backend()
    for _ in range(3):
        backend.authenticate("999999", "000000", "1", "call-1")
    assert backend.authenticate(ACCOUNT, "123456", "1", "call-1").outcome == "call_limit"

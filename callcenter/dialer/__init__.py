"""The published import path of the pacers (DESIGN.md's contract, used by outside checks):
``from callcenter.domain.pacing import make_pacer, AttemptOutcome, DialerState, AgentView``. The code lives in
``callcenter.domain.pacing`` (pure rules) and the dialler's use cases in ``callcenter.services.dialer``."""

"""Lead files' header row: the English headers the upload help names, in any case or spacing, and the Chinese ones."""

from callcenter.services.dialer.leads import _columns


def test_the_headers_the_help_names_are_understood_whatever_their_case_and_spacing() -> None:
    assert _columns(["Phone", "Name", "Client number", "Priority", "Time zone", "Where we met", "Date met"]) == [
        "phone", "name", "client_no", "priority", "timezone", "met_at", "met_date"]
    assert _columns(["手机", "姓名", "客户号", "优先级", "时区", "认识地点", "认识日期"]) == [
        "phone", "name", "client_no", "priority", "timezone", "met_at", "met_date"]
    assert _columns(["phone", "met-at", "MET_DATE"]) == ["phone", "met_at", "met_date"]

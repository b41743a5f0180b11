import pytest

from config.flower import flower_argv


@pytest.mark.parametrize("auth", ["", "admin", ":secret", "admin:"])
def test_flower_refuses_to_start_without_basic_auth_credentials(auth):
    with pytest.raises(SystemExit, match="FLOWER_BASIC_AUTH"):
        flower_argv({"FLOWER_BASIC_AUTH": auth})


def test_flower_starts_with_basic_auth_and_port():
    argv = flower_argv({"FLOWER_BASIC_AUTH": "ops:s3cret", "FLOWER_PORT": "6000"})
    assert argv[:4] == ["celery", "--app", "config", "flower"]
    assert "--basic-auth=ops:s3cret" in argv
    assert "--port=6000" in argv

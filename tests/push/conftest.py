# The fakes are a plugin so other test packages can load them the same way;
# star import instead of pytest_plugins because this is not the root conftest.
from tests.fakes.fixtures import *  # noqa: F403

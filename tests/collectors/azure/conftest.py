from tests.collectors.azure.rigs import make_rig

__all__ = ["make_rig"]

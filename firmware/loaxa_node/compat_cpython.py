# CPython stand-ins for MicroPython's viper names (see compat.py, which
# imports this only where `micropython` is missing).


class _Decorators:
    @staticmethod
    def native(f):
        return f

    viper = native


micropython = _Decorators()


def const(x):
    return x


def ptr8(b):
    return memoryview(b).cast("B")


def ptr16(b):
    return memoryview(b).cast("B").cast("H")


def ptr32(b):
    return memoryview(b).cast("B").cast("I")

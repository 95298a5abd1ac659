# Lets pure modules with viper/native loops import and run under CPython too,
# so the host and the tests use the very same code as the node.
#
# Convention for viper code: take buffers untyped and cast inside
# (p = ptr16(buf)); reads are unsigned, writes are masked (& 0xFFFF). Under
# MicroPython the casts are compiled by viper; here they are memoryviews with
# the same unsigned semantics.
try:
    import micropython
    from micropython import const

    ptr8 = ptr16 = ptr32 = None  # viper resolves these names at compile time
except ImportError:

    class _Decorators:
        @staticmethod
        def native(f):
            return f

        viper = native

    micropython = _Decorators()  # type: ignore[assignment]

    def const(x):  # type: ignore[misc]
        return x

    def ptr8(b):
        return memoryview(b).cast("B")

    def ptr16(b):
        return memoryview(b).cast("B").cast("H")

    def ptr32(b):
        return memoryview(b).cast("B").cast("I")

"""The engine's parts as the composition root starts them: one module a part (dialler, ...), each a coroutine
``runner(core, stop)`` that builds what its part needs from the composition root and runs until ``stop``."""

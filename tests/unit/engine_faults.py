"""Fault injection for the engine pool tests, installed with `EnginePool(..., child_wrap=inject_faults)`.

It runs in the pool's real child process (spawn imports this module there): an input marked
`"_fault": "segv"` kills that process with SIGSEGV, one marked `"_fault": "hang"` makes it stop answering.
The production child has no such path; a pool built without the hook evaluates marked inputs normally.
"""

import os
import signal
import time


def inject_faults(evaluate):
    def faulty(domain, inputs):
        faults = {i.get("_fault") for i in inputs}
        if "segv" in faults:
            os.kill(os.getpid(), signal.SIGSEGV)
        if "hang" in faults:
            time.sleep(3600)
        return evaluate(domain, inputs)

    return faulty

"""Fault injection for the engine pool tests, installed with `EnginePool(..., child_wrap=inject_faults)`.

It runs in the pool's real child process (spawn imports this module there). An input marked
`"_fault": "segv"`, or holding the text `nhiguard-fault-segv` anywhere (a request id, an asset id: so a real
record can carry it through the adapters), kills that process with SIGSEGV; `hang` makes it stop answering;
`gone` kills it and leaves it unable to start again: the flag file named by $NHIGUARD_TEST_ENGINE_BROKEN is
created, and a child that finds it at start refuses to serve (the parent sees an engine that cannot be
started) until the test removes it. The production child has no such path; a pool built without the hook
evaluates marked inputs normally.
"""

import json
import os
import re
import signal
import time

BROKEN_FLAG = "NHIGUARD_TEST_ENGINE_BROKEN"
_MARK = re.compile(r"nhiguard-fault-(segv|hang|gone)")


def inject_faults(evaluate):
    flag = os.environ.get(BROKEN_FLAG)
    if flag and os.path.exists(flag):
        raise RuntimeError("the test broke this engine")  # the child refuses to start

    def faulty(domain, inputs):
        faults = {i.get("_fault") for i in inputs} | set(_MARK.findall(json.dumps(inputs)))
        if "gone" in faults and flag:
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        if "segv" in faults:
            os.kill(os.getpid(), signal.SIGSEGV)
        if "hang" in faults:
            time.sleep(3600)
        return evaluate(domain, inputs)

    return faulty

#!/usr/bin/python3
"""example_recipe.py — a short ALD recipe driven through aldrecd.

    example_recipe.py SOCKET [CONFIG]

Heat-up raises the heater set points and waits until heater1 is near them;
the ALD step sets the precursor flows and enables the sequencer; purge
disables it and closes the valves. Every set point is written by aldrecd
between two poll requests, read back and recorded with the run."""

import sys
import time

import aldrec


def main():
    sock = sys.argv[1]
    config = sys.argv[2] if len(sys.argv) > 2 else None
    with aldrec.Recorder(sock, config=config) as r:
        run = r.start("example-ald")
        print("run", run)
        r.step(1, "heat-up")
        r.set({"heater1.setpoint": 220, "heater2.setpoint": 200}, by="example_recipe heat-up")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if r.get("heater1.temperature").value > 30:
                break
            time.sleep(0.2)
        r.step(2, "ALD cycles")
        r.set({"mfc_tma.setpoint": 12.5, "mfc_h2o.setpoint": 15, "ald.enable": True},
              by="example_recipe ALD")
        time.sleep(1)
        r.step(3, "purge")
        r.set({"ald.enable": False, "valve_tma.open": False, "valve_h2o.open": False,
               "mfc_tma.setpoint": 0, "mfc_h2o.setpoint": 0}, by="example_recipe purge")
        print(r.get("heater1.setpoint", "mfc_tma.setpoint", fresh=True))
        print(r.stop())


if __name__ == "__main__":
    main()

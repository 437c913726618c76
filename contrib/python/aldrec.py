"""aldrec.py — drive aldrecd from a Python recipe engine (standard library only).

One Unix-socket connection per call sequence: `Recorder` opens it, switches
it to a session (the control protocol's SESSION request: docs/protocol.md)
and sends every step, set and get over it, so a recipe step costs one
request/answer on a socket already open — no process, no libpq, no second
Modbus connection (aldrecd is the devices' one master).

    with aldrec.Recorder("/run/aldrec/aldrecd.sock", config="/etc/aldrec/aldrec.conf") as r:
        run = r.start("ALD-Al2O3")
        r.step(1, "heat-up")
        r.set({"heater1.setpoint": 250, "heater2.setpoint": 240}, by="recipe ALD-Al2O3")
        print(r.get("heater1.temperature").value)
        r.stop()

start() and stop() also write the run's row in PostgreSQL (processes), which
only the aldrec command does: they run `aldrec process start/stop` once per
run. Everything else stays on the socket.
"""

import socket
import subprocess

__all__ = ["Recorder", "Value", "SetResult", "AldrecError", "InputError", "DeviceError"]


class AldrecError(Exception):
    """aldrecd answered ERR (or could not be reached). .lines: the answer's
    further lines (for SET, one per set point: "ok …", "failed …", "skipped …")."""

    def __init__(self, message, lines=()):
        super().__init__(message)
        self.lines = list(lines)


class InputError(AldrecError):
    """Bad input ("ERR input: …"): nothing was written (aldrec set exits 2)."""


class DeviceError(AldrecError):
    """A device or runtime failure; for SET, .lines says which set points were written."""


class Value:
    """One GET line: name, value (float or None), quality, quality_name, age_ms, text."""

    __slots__ = ("name", "value", "quality", "quality_name", "age_ms", "text")

    def __init__(self, line):
        f = line.split("\t")
        if len(f) != 6:
            raise AldrecError("unexpected GET line: %r" % line)
        self.name = f[0]
        self.value = None if f[1] == "NULL" else float(f[1])
        self.quality = int(f[2])
        self.quality_name = f[3]
        self.age_ms = int(f[4])
        self.text = f[5]

    def __repr__(self):
        return "Value(%s = %s, quality %d %s, %d ms old)" % (
            self.name, self.text, self.quality, self.quality_name, self.age_ms)


class SetResult:
    """A SET's answer: .summary (its first line) and .lines (one per set point)."""

    def __init__(self, summary, lines):
        self.summary = summary
        self.lines = lines


def _value_text(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


class Recorder:
    """A session on aldrecd's control socket. Not thread-safe: one per thread."""

    def __init__(self, path="/run/aldrec/aldrecd.sock", timeout=10.0, config=None,
                 aldrec="aldrec"):
        self._aldrec = [aldrec] + (["--config", config] if config else [])
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as e:
            self._sock.close()
            raise AldrecError("cannot connect to aldrecd at %s: %s" % (path, e)) from e
        self._buf = b""
        self.request("SESSION")

    # -- the protocol -----------------------------------------------------------
    def _answer(self):
        lines = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise AldrecError("aldrecd closed the connection")
                self._buf += chunk
                continue
            line = self._buf[:nl].decode("utf-8", "replace")
            self._buf = self._buf[nl + 1:]
            if line == ".":
                return lines
            lines.append(line)

    def request(self, line):
        """Sends one request line; returns the answer's lines (the first is
        "OK …"). Raises InputError / DeviceError on "ERR …"."""
        if "\n" in line or len(line.encode()) > 510:
            raise InputError("a request is one line of at most 510 bytes")
        self._sock.sendall(line.encode() + b"\n")
        lines = self._answer()
        if not lines:
            raise AldrecError("empty answer to %r" % line.split(" ")[0])
        head = lines[0]
        if head.startswith("OK"):
            return lines
        if head.startswith("ERR input: "):
            raise InputError(head[len("ERR input: "):], lines[1:])
        raise DeviceError(head[4:] if head.startswith("ERR ") else head, lines[1:])

    # -- recipe calls -------------------------------------------------------------
    def set(self, setpoints, value=None, by=None):
        """set("heater1.setpoint", 250) or set({"heater1.setpoint": 250, ...}):
        every value is checked before any is written; they are written in
        the order given, read back and recorded before this returns."""
        if value is not None:
            setpoints = {setpoints: value}
        parts = ["%s=%s" % (k, _value_text(v)) for k, v in setpoints.items()]
        line = "SET " + " ".join(parts)
        if by:
            line += " BY " + by
        lines = self.request(line)
        return SetResult(lines[0], lines[1:])

    def get(self, *names, fresh=False):
        """The latest polled value of each name (or with fresh=True one read
        now); one Value for one name, else a list."""
        lines = self.request("GET " + ("FRESH " if fresh else "") + " ".join(names))
        values = [Value(l) for l in lines[1:]]
        return values[0] if len(names) == 1 else values

    def step(self, number, name):
        """Marks recipe step number of the running process from now on."""
        return self.request("STEP %d %s" % (number, name))[0]

    def status(self):
        """aldrecd's STATUS lines as a list of "key: value" strings."""
        return self.request("STATUS")[1:]

    def start(self, recipe):
        """Starts a run of recipe (its processes row via `aldrec process
        start`); returns the process id."""
        out = subprocess.run(self._aldrec + ["process", "start", "--recipe", recipe],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise DeviceError("aldrec process start: " + out.stderr.strip())
        return int(out.stdout.strip())

    def stop(self):
        """Stops the run; returns aldrecd's account of its rows."""
        out = subprocess.run(self._aldrec + ["process", "stop"], capture_output=True, text=True)
        if out.returncode != 0:
            raise DeviceError("aldrec process stop: " + out.stderr.strip())
        return out.stdout.strip()

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

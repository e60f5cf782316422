#!/usr/bin/python3
"""Repack Python distributions installed by Debian packages into wheels.

Usage: /usr/bin/python3 test/rig/debian-wheels.py OUTDIR DIST [DIST...]
       e.g. debian-wheels.py /tmp/wheels Django gunicorn psycopg2

Why this exists: the tests, the rehearsal and the benchmarks run on an offline
Debian machine with no PyPI, yet the artifact format needs a wheelhouse that
`pip install --no-index --require-hashes` can install into a venv. Debian's
python3-* packages already hold the exact code the site pins, so this script
turns those installed files into wheels for a `--find-links` directory. Real
users never need it: `npm run package-site` runs `pip wheel` against PyPI.

What it does, for each named distribution and everything it depends on:
- finds the files through dpkg (the Debian package owning the metadata and each
  top-level module), keeping only dist-packages files of that distribution;
- writes a wheel with a .dist-info (METADATA, WHEEL, entry_points.txt,
  top_level.txt, RECORD). Debian strips install_requires from egg-info and
  states dependencies as Debian package relations instead, so Requires-Dist is
  rebuilt from the Debian `Depends` field (mapped back to Python
  distributions) plus whatever the metadata still declares; `pip wheel` then
  resolves the same closure a PyPI build would.

The output is deterministic (sorted entries, fixed timestamps and modes), so
re-running it rewrites nothing and the artifact's lock hash stays stable.
"""

import base64
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

SITE = "/usr/lib/python3/dist-packages"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest timestamp a zip entry can carry
GENERATOR = "greenlight-debian-wheels (1)"


class Failure(Exception):
    pass


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_escape(text):
    return re.sub(r"[^\w\d.]+", "_", text, flags=re.UNICODE)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.returncode, proc.stdout


def split_metadata(text):
    """Split RFC 822-style metadata into (list of (key, raw lines)), body)."""
    head, sep, body = text.partition("\n\n")
    headers = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and headers:
            headers[-1][1].append(line)
        elif line:
            key = line.split(":", 1)[0]
            headers.append((key, [line]))
    return headers, body if sep else ""


def header_values(headers, key):
    return [lines[0].split(":", 1)[1].strip() for k, lines in headers if k.lower() == key.lower()]


class Dist:
    """One distribution installed in dist-packages (egg-info or dist-info)."""

    def __init__(self, meta_dir):
        self.meta_dir = meta_dir
        self.meta_path = os.path.join(SITE, meta_dir)
        self.egg = meta_dir.endswith(".egg-info")
        if os.path.isdir(self.meta_path):
            info = os.path.join(self.meta_path, "PKG-INFO" if self.egg else "METADATA")
        else:
            info = self.meta_path  # an egg-info may be a single PKG-INFO file
        with open(info, encoding="utf-8") as fh:
            self.metadata = fh.read()
        headers, _ = split_metadata(self.metadata)
        self.name = header_values(headers, "Name")[0]
        self.version = header_values(headers, "Version")[0]
        self.key = canonical(self.name)

    def read_meta(self, filename):
        path = os.path.join(self.meta_path, filename)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read()

    def top_level(self):
        text = self.read_meta("top_level.txt")
        if text is not None:
            return sorted({line.strip() for line in text.splitlines() if line.strip()})
        guess = self.meta_dir.split("-", 1)[0]
        return [guess]

    def declared_requirements(self):
        """Requires-Dist lines as the metadata states them (markers and extras kept)."""
        headers, _ = split_metadata(self.metadata)
        reqs = header_values(headers, "Requires-Dist")
        text = self.read_meta("requires.txt") if self.egg else None
        if text is None:
            return reqs
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            extra, _, marker = section.partition(":")
            conditions = []
            if marker:
                conditions.append("(%s)" % marker if extra else marker)
            if extra:
                conditions.append('extra == "%s"' % extra)
            reqs.append(line + ("; " + " and ".join(conditions) if conditions else ""))
        return reqs


def installed_dists():
    dists = {}
    for entry in sorted(os.listdir(SITE)):
        if entry.endswith((".egg-info", ".dist-info")):
            try:
                dist = Dist(entry)
            except (OSError, IndexError, UnicodeDecodeError):
                continue
            dists.setdefault(dist.key, dist)
    return dists


class Debian:
    """Answers about Debian packages, cached (dpkg is slow to start)."""

    def __init__(self, dists):
        self.dists = dists
        self._files = {}
        self._owner = {}
        self._installed = {}
        self.by_top_level = {}
        for dist in dists.values():
            for top in dist.top_level():
                self.by_top_level.setdefault(top, dist)

    def installed(self, pkg):
        if pkg not in self._installed:
            code, out = run(["dpkg-query", "-W", "-f=${Status}", pkg])
            self._installed[pkg] = code == 0 and out.strip().endswith(" installed")
        return self._installed[pkg]

    def owners(self, path):
        if path not in self._owner:
            code, out = run(["dpkg", "-S", path])
            owners = set()
            if code == 0:
                for line in out.splitlines():
                    pkgs, _, owned = line.rpartition(": ")
                    if owned == path:
                        owners.update(p.strip().split(":")[0] for p in pkgs.split(","))
            self._owner[path] = sorted(owners)
        return self._owner[path]

    def files(self, pkg):
        if pkg not in self._files:
            code, out = run(["dpkg", "-L", pkg])
            if code != 0:
                raise Failure("dpkg -L %s failed" % pkg)
            self._files[pkg] = [line for line in out.splitlines() if line.startswith(SITE + "/")]
        return self._files[pkg]

    def depends(self, pkg):
        code, out = run(["dpkg-query", "-W", "-f=${Pre-Depends}, ${Depends}", pkg])
        if code != 0:
            raise Failure("dpkg-query %s failed" % pkg)
        groups = []
        for group in out.split(","):
            alternatives = []
            for alt in group.split("|"):
                name = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip().split(":")[0]
                if name:
                    alternatives.append(name)
            if alternatives:
                groups.append(alternatives)
        return groups

    def dists_of(self, pkg):
        """Python distributions a Debian package installs into dist-packages."""
        by_meta_dir = {dist.meta_dir: dist for dist in self.dists.values()}
        found = {}
        for path in self.files(pkg):
            rel = path[len(SITE) + 1 :]
            top = rel.split("/", 1)[0]
            if top.endswith((".egg-info", ".dist-info")):
                dist = by_meta_dir.get(top)
            else:
                # pkg_resources ships in its own Debian package but belongs to setuptools.
                dist = self.by_top_level.get(top.split(".", 1)[0])
            if dist is not None:
                found[dist.key] = dist
        return sorted(found.values(), key=lambda d: d.key)


def requirement_name(req):
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return canonical(match.group(1)) if match else None


def resolve(dist, debian):
    """(Requires-Dist lines, names of distributions to follow) for one dist."""
    declared = dist.declared_requirements()
    lines = list(declared)
    follow = set()
    for req in declared:
        if ";" not in req:  # markers and extras are not part of the closure we ship
            name = requirement_name(req)
            if name:
                follow.add(name)
    for pkg in owning_packages(dist, debian):
        for group in debian.depends(pkg):
            chosen = next((alt for alt in group if debian.installed(alt)), None)
            if chosen is None:
                continue
            for dep in debian.dists_of(chosen):
                if dep.key != dist.key and dep.key not in follow:
                    follow.add(dep.key)
                    lines.append(dep.name)
    return lines, sorted(follow)


def owning_packages(dist, debian):
    pkgs = set(debian.owners(dist.meta_path))
    if not pkgs:
        raise Failure("%s is not installed by a Debian package (%s)" % (dist.name, dist.meta_path))
    for top in dist.top_level():
        for candidate in (top, top + ".py"):
            path = os.path.join(SITE, candidate)
            if os.path.lexists(path):
                pkgs.update(debian.owners(path))
    return sorted(pkgs)


def collect_files(dist, debian):
    """{archive path: source path} of the distribution's importable files."""
    tops = set(dist.top_level())
    meta_pkgs = set(debian.owners(dist.meta_path))
    chosen = {}
    for pkg in owning_packages(dist, debian):
        for path in debian.files(pkg):
            rel = path[len(SITE) + 1 :]
            first = rel.split("/", 1)[0]
            if first.endswith((".egg-info", ".dist-info")):
                continue
            module = first.split(".", 1)[0]
            at_root = "/" not in rel
            if module not in tops and not (at_root and pkg in meta_pkgs):
                continue
            if "__pycache__" in rel.split("/") or rel.endswith((".pyc", ".pyo")):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                continue  # dpkg lists directories too; their files come separately
            if os.path.isdir(path):
                for root, dirs, files in os.walk(path, followlinks=True):
                    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                    for name in files:
                        full = os.path.join(root, name)
                        chosen[os.path.relpath(full, SITE)] = full
                continue
            if not os.path.exists(path):
                # Debian replaces bundled copies (Django's jQuery) with symlinks
                # into /usr/share; a dangling one has nothing to ship.
                print("warning: %s: skipping dangling %s" % (dist.name, path), file=sys.stderr)
                continue
            chosen[rel] = path
    if not chosen:
        raise Failure("no files found for %s" % dist.name)
    return chosen


def platform_tag():
    impl = "cp%d%d" % sys.version_info[:2]
    plat = re.sub(r"[-.]", "_", sysconfig.get_platform())
    return "%s-%s-%s" % (impl, impl, plat)


def build_metadata(dist, requires):
    headers, body = split_metadata(dist.metadata)
    kept = [lines for key, lines in headers if key.lower() not in ("requires-dist", "requires", "metadata-version")]
    declared = header_values(headers, "Metadata-Version")
    # Requires-Dist needs metadata 1.2+; 2.1 is what pip writes for wheels today.
    as_tuple = tuple(int(part) for part in re.findall(r"\d+", declared[0])) if declared else ()
    meta_version = declared[0] if as_tuple >= (2, 1) else "2.1"
    out = ["Metadata-Version: " + meta_version]
    for lines in kept:
        out.extend(lines)
    out.extend("Requires-Dist: " + req for req in requires)
    text = "\n".join(out) + "\n"
    if body:
        text += "\n" + body
    return text


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_wheel(dist, debian, outdir):
    requires, follow = resolve(dist, debian)
    files = collect_files(dist, debian)
    binary = any(re.search(r"\.so(\.|$)", rel) for rel in files)
    tag = platform_tag() if binary else "py3-none-any"
    info = "%s-%s.dist-info" % (wheel_escape(dist.name), wheel_escape(dist.version))

    entries = []
    for rel in sorted(files):
        src = files[rel]
        with open(src, "rb") as fh:
            data = fh.read()
        executable = os.stat(src).st_mode & 0o111
        entries.append((rel, data, 0o755 if executable else 0o644))

    meta = {
        "METADATA": build_metadata(dist, requires),
        "WHEEL": "Wheel-Version: 1.0\nGenerator: %s\nRoot-Is-Purelib: %s\nTag: %s\n"
        % (GENERATOR, "false" if binary else "true", tag),
        "top_level.txt": "".join(top + "\n" for top in dist.top_level()),
    }
    entry_points = dist.read_meta("entry_points.txt")
    if entry_points:
        meta["entry_points.txt"] = entry_points
    for name in sorted(meta):
        entries.append(("%s/%s" % (info, name), meta[name].encode("utf-8"), 0o644))

    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for rel, data, _ in entries:
        writer.writerow([rel, record_hash(data), len(data)])
    writer.writerow([info + "/RECORD", "", ""])
    entries.append((info + "/RECORD", record.getvalue().encode("utf-8"), 0o644))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, data, mode in entries:
            zi = zipfile.ZipInfo(rel, date_time=ZIP_EPOCH)
            zi.external_attr = (0o100000 | mode) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data, compresslevel=6)
    payload = buf.getvalue()

    name = "%s-%s-%s.whl" % (wheel_escape(dist.name), wheel_escape(dist.version), tag)
    target = os.path.join(outdir, name)
    if os.path.isfile(target):
        with open(target, "rb") as fh:
            if fh.read() == payload:
                return target, follow, False
    fd, tmp = tempfile.mkstemp(dir=outdir, prefix=".tmp-", suffix=".whl")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target, follow, True


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    dists = installed_dists()
    debian = Debian(dists)
    queue = [canonical(name) for name in argv[2:]]
    done = set()
    while queue:
        key = queue.pop(0)
        if key in done:
            continue
        done.add(key)
        dist = dists.get(key)
        if dist is None:
            raise Failure("%s is not installed in %s" % (key, SITE))
        target, follow, written = make_wheel(dist, debian, outdir)
        print("%s %s" % ("wrote" if written else "unchanged", target))
        queue.extend(k for k in follow if k not in done)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Failure as err:
        print("debian-wheels: %s" % err, file=sys.stderr)
        sys.exit(1)

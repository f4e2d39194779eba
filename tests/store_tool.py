#!/usr/bin/env python3
"""Look inside a repository on any backend, for the e2e tests (lib.sh's
repo_* helpers): the tests check objects without knowing where they live.

  store_tool.py ls ADDRESS [DIR]      "name size" of every object (under DIR/)
  store_tool.py get ADDRESS NAME      the object to stdout (exit 6 if absent)
  store_tool.py put ADDRESS NAME      stdin to the object (replaced whole)
  store_tool.py rm ADDRESS NAME...    delete objects (absent ones are fine)
  store_tool.py purge ADDRESS         delete every object of the repository
  store_tool.py uploads ADDRESS       s3: names with an incomplete multipart upload
  store_tool.py abort-uploads ADDRESS s3: abort those uploads
  store_tool.py start-upload ADDRESS NAME  s3: begin a multipart upload, left unfinished

ADDRESS: a directory (or dir:PATH), or rados:POOL[/PREFIX] (python3-rados,
cluster from CEPH_CONF) or s3://BUCKET[/PREFIX] (curl, as the S3 class says)."""
import os
import sys


class Dir:
    def __init__(self, path):
        self.path = path

    def ls(self, sub):
        top = os.path.join(self.path, sub) if sub else self.path
        for root, dirs, files in os.walk(top):
            for f in files:
                p = os.path.join(root, f)
                yield os.path.relpath(p, self.path), os.lstat(p).st_size

    def get(self, name):
        try:
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put(self, name, data):
        p = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)

    def rm(self, name):
        try:
            os.unlink(os.path.join(self.path, name))
        except FileNotFoundError:
            pass

    def purge(self):
        import shutil
        shutil.rmtree(self.path, ignore_errors=True)


class Rados:
    def __init__(self, rest):
        import rados
        self.rados = rados
        pool, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.cluster = rados.Rados(conffile=os.environ.get("CEPH_CONF", ""))
        self.cluster.connect(timeout=30)
        self.io = self.cluster.open_ioctx(pool)

    def ls(self, sub):
        want = self.prefix + (sub.rstrip("/") + "/" if sub else "")
        for o in self.io.list_objects():
            if o.key.startswith(want):
                size, _ = self.io.stat(o.key)
                yield o.key[len(self.prefix):], size

    def get(self, name):
        try:
            size, _ = self.io.stat(self.prefix + name)
            return self.io.read(self.prefix + name, size + 1, 0) if size else b""
        except self.rados.ObjectNotFound:
            return None

    def put(self, name, data):
        self.io.write_full(self.prefix + name, data)

    def rm(self, name):
        try:
            self.io.remove_object(self.prefix + name)
        except self.rados.ObjectNotFound:
            pass

    def purge(self):
        for name, _ in list(self.ls("")):
            self.rm(name)


class S3:
    """Through the curl CLI (its own SigV4 signer, as cairn's): endpoint,
    region and keys from CAIRN_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY."""

    def __init__(self, rest):
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.base = os.environ["CAIRN_S3_ENDPOINT"].rstrip("/") + "/" + bucket
        region = os.environ.get("AWS_REGION") or "us-east-1"
        self.auth = ["--aws-sigv4", "aws:amz:%s:s3" % region, "--user",
                     os.environ["AWS_ACCESS_KEY_ID"] + ":" + os.environ["AWS_SECRET_ACCESS_KEY"],
                     "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]

    def _curl(self, args, data=None):
        import subprocess
        r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}"] + self.auth + args,
                           input=data, capture_output=True, check=False)
        body, _, code = r.stdout.rpartition(b"\n")
        if r.returncode != 0 or not code.isdigit():
            sys.exit("store_tool.py: curl %s failed: %s" % (args[-1], r.stderr.decode(errors="replace")))
        return int(code), body

    def _url(self, name):
        from urllib.parse import quote
        return self.base + "/" + quote(self.prefix + name, safe="/-._~")

    def ls(self, sub):
        import xml.etree.ElementTree as ET
        from urllib.parse import quote
        want = self.prefix + (sub.rstrip("/") + "/" if sub else "")
        token = None
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            q = "list-type=2&prefix=" + quote(want, safe="-._~")
            if token:
                q = "continuation-token=" + quote(token, safe="-._~") + "&" + q
            code, body = self._curl([self.base + "?" + q])
            if code != 200:
                sys.exit("store_tool.py: list %s: HTTP %d" % (want, code))
            root = ET.fromstring(body)
            for c in root.iter(ns + "Contents"):
                yield c.find(ns + "Key").text[len(self.prefix):], int(c.find(ns + "Size").text)
            if root.findtext(ns + "IsTruncated") != "true":
                return
            token = root.findtext(ns + "NextContinuationToken")

    def get(self, name):
        code, body = self._curl([self._url(name)])
        if code == 404:
            return None
        if code != 200:
            sys.exit("store_tool.py: get %s: HTTP %d" % (name, code))
        return body

    def put(self, name, data):
        code, _ = self._curl(["-X", "PUT", "--data-binary", "@-", "-H", "Content-Type: application/octet-stream",
                              self._url(name)], data)
        if code != 200:
            sys.exit("store_tool.py: put %s: HTTP %d" % (name, code))

    def rm(self, name):
        self._curl(["-X", "DELETE", self._url(name)])

    def uploads(self):
        """(key, upload id) of the incomplete multipart uploads under the prefix."""
        import xml.etree.ElementTree as ET
        from urllib.parse import quote
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        code, body = self._curl([self.base + "?prefix=" + quote(self.prefix, safe="-._~") + "&uploads="])
        if code != 200:
            sys.exit("store_tool.py: list uploads: HTTP %d" % code)
        for u in ET.fromstring(body).iter(ns + "Upload"):
            yield u.findtext(ns + "Key"), u.findtext(ns + "UploadId")

    def start_upload(self, name):
        """Initiate a multipart upload of name and leave it unfinished."""
        code, _ = self._curl(["-X", "POST", self._url(name) + "?uploads="])
        if code != 200:
            sys.exit("store_tool.py: start upload %s: HTTP %d" % (name, code))

    def abort_uploads(self):
        from urllib.parse import quote
        for key, uid in list(self.uploads()):
            self._curl(["-X", "DELETE", self._url(key[len(self.prefix):]) + "?uploadId=" + quote(uid, safe="-._~")])

    def purge(self):
        for name, _ in list(self.ls("")):
            self.rm(name)
        self.abort_uploads()


def open_store(address):
    if address.startswith("rados:"):
        return Rados(address[6:])
    if address.startswith("s3://"):
        return S3(address[5:])
    return Dir(address[4:] if address.startswith("dir:") else address)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, st = sys.argv[1], open_store(sys.argv[2])
    args = sys.argv[3:]
    if cmd == "ls":
        for name, size in sorted(st.ls(args[0] if args else "")):
            print(name, size)
    elif cmd == "get":
        data = st.get(args[0])
        if data is None:
            sys.exit(6)
        sys.stdout.buffer.write(data)
    elif cmd == "put":
        st.put(args[0], sys.stdin.buffer.read())
    elif cmd == "rm":
        for name in args:
            st.rm(name)
    elif cmd == "uploads" and isinstance(st, S3):
        for key, _ in sorted(st.uploads()):
            print(key[len(st.prefix):])
    elif cmd == "start-upload" and isinstance(st, S3):
        st.start_upload(args[0])
    elif cmd == "abort-uploads" and isinstance(st, S3):
        st.abort_uploads()
    elif cmd == "purge":
        st.purge()
    else:
        sys.exit(__doc__)


main()

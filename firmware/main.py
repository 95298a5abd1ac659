# Boot stub on the node's flash root. Runs the application folder named in
# app.ptr (written atomically by `loaxa deploy` after a verified copy), so an
# interrupted deploy leaves the previous application in place.
import sys


def _app_dir():
    try:
        with open("app.ptr") as f:
            return f.read().strip()
    except OSError:
        return ""


_d = _app_dir()
if _d:
    sys.path.insert(0, _d)

try:
    from loaxa_node import app
except Exception as e:  # a broken app must still leave the REPL for repair
    sys.print_exception(e)
    print("loaxa: application failed to import; REPL left open for repair")
else:
    app.main()

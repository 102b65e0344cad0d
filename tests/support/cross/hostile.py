"""A hostile Python plugin for the isolation tests: its misdeed is chosen by
the endpoint's config (`{"mode": ...}`). Built as the `app.py` of a
project written by `hookgate plugin new --lang python`.
"""


def transform(event, config):
    mode = config.get("mode")
    if mode == "spin":
        while True:
            pass
    if mode == "memory":
        kept = []
        while True:
            kept.append(bytearray(16 << 20))
    if mode == "recursion":
        def down(n):
            return down(n + 1) + 1
        return {"body": str(down(0))}
    if mode == "throw":
        raise ValueError("refused by the script")
    if mode == "huge":
        return {"body": "x" * (4 << 20)}
    if mode == "logs":
        i = 0
        while True:
            print("flood", i)
            i += 1
    return {"body": "unexpected mode"}

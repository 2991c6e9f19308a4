"""Schemathesis hooks for .ci/schemathesis.sh: request bodies of media
types Schemathesis cannot generate by itself."""
from hypothesis import strategies as st

import schemathesis

# `POST /ssf/{team}/events` takes a Security Event Token as the raw body
# (`application/secevent+jwt`): a compact JWS of three base64url parts,
# or any bytes a stranger might post instead.
_part = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    max_size=64,
)
schemathesis.openapi.media_type(
    "application/secevent+jwt",
    st.one_of(
        st.tuples(_part, _part, _part).map(lambda p: ".".join(p).encode()),
        st.binary(max_size=256),
    ),
)

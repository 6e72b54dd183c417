"""The simulator's published keys and PIN: what Airtel's portal gives a sandbox app.

Not secrets: a 1024-bit RSA pair made for the simulator (Airtel's own PIN keys are 1024-bit
too), whose public half malipo encrypts the sandbox disbursement PIN under and whose private half
the simulator decrypts it with. Live traffic uses ``MALIPO_AIRTEL_PIN_PUBLIC_KEY`` and
``MALIPO_AIRTEL_DISBURSEMENT_PIN`` instead.
"""

from __future__ import annotations

__all__ = ["SANDBOX_PIN", "SANDBOX_PIN_PRIVATE_KEY", "SANDBOX_PIN_PUBLIC_KEY"]

SANDBOX_PIN = "1234"

# base64 of the DER SubjectPublicKeyInfo, as Airtel publishes its keys.
SANDBOX_PIN_PUBLIC_KEY = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDcxlLSSpTYdLjXG6uBivvub/11SDHgVsI5PVNIdqkD1IU0PLt0/P8I"
    "YpNwVS14qaMdk4laYcP5Z9ElNBkAVTs9cyTkUoeE76h1LnEN2MhurvzDDIgBXs+WNOkHr8G8HJHhdSvRKKG/0fuS+gfO"
    "K7+FV9Zd/ay3MiEuKTOOkgmg/QIDAQAB"
)

SANDBOX_PIN_PRIVATE_KEY = """\
-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBANzGUtJKlNh0uNcb
q4GK++5v/XVIMeBWwjk9U0h2qQPUhTQ8u3T8/whik3BVLXipox2TiVphw/ln0SU0
GQBVOz1zJORSh4TvqHUucQ3YyG6u/MMMiAFez5Y06QevwbwckeF1K9Eoob/R+5L6
B84rv4VX1l39rLcyIS4pM46SCaD9AgMBAAECgYAN8klRF30Hn3f9vrW63TjE+zYb
ro/YCCME0qbsMPLEVyyC/EMrRMAnm3KM6hSRRsYTHDrVBtAGdVR08TGTH886GHXN
o3b8Kt2yCHhZK/sc9NvY+OPXig0mO/EyOu6k8gkbkQDTUEimV+B+tOgeRtOOUK3W
axWh5L9FiBMy5ZdCUQJBAPl45fgJUoxO3VLq1F/R+kmAoXidM55ooOgrLbQXj8eE
+hO/bZhP6eaxpCPjFu/YZjer9nKKw+z0LjvLhiA4E5MCQQDijTF5np8aw2aAmihi
ryl0B0Wk7vtkmGi90AVCmR0zx4x5o4bdfjHl60nFpOPSLI3ruDAU5ke24aqiapHr
IXMvAkEAzAluhTQSuMDT0bpQomIZg75Z0k04Z6oJWHngMnhG1xdSdY5Oc5GAq3bE
2bklDFuAFq5lrX8DCa0Ylz05YOacUwJAbuxixQF9NUVm8qCIFYld6omE9/Rq8h4N
aqJncOw2+BtEFGqUpe4b0E8bl8HcKhPWiQttv03g3xIu0ccMGuwN0QJBAOjgZ5Cs
EeCJWmUh1hTzaFpDyv9CGych3VRV3qCn82kfFSVczKE5hcjsnY4JuFI2deh33/NN
Up+V3utYwalnXwc=
-----END PRIVATE KEY-----
"""

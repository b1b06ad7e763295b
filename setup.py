"""Build script for the one C extension (metadata lives in setup.cfg).

``switch.media._rtpio`` (batched RTP socket I/O, see switch/media/_rtpio.c) is optional:
on a machine without a C compiler or Python headers the build of the extension fails
quietly and the media engine uses its pure-Python I/O path (logged once at start).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "switch.media._rtpio",
            sources=["switch/media/_rtpio.c"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        )
    ]
)

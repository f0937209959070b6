"""Build the compiled modules of kbgp._fast.

Every module under kbgp/_fast is a Cython extension and is always compiled:
there is no pure-Python fallback, so a build without a C compiler fails loudly
instead of shipping a slow speaker.
"""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

FAST = Path("kbgp/_fast")

extensions = [
    Extension(
        f"kbgp._fast.{pyx.stem}",
        [str(pyx)],
        extra_compile_args=["-O3", "-fno-strict-aliasing"],
    )
    for pyx in sorted(FAST.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level="3",
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
)

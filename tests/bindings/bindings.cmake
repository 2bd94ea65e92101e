# Tests of the language bindings (bindings/python, bindings/kotlin, bindings/swift).
# Included from tests/CMakeLists.txt. Every test is named bindings_* (ctest -R bindings).
#
# Python and Kotlin load the shared library into an uninstrumented interpreter/JVM, which
# cannot load a sanitizer build: they are registered only without SF_SANITIZE.

set(SF_BIND_SRC ${PROJECT_SOURCE_DIR})

# Cross builds: the host's Python and JVM cannot load a library built for another CPU, so the
# Python and Kotlin tests are registered as skipped, each saying why.
if(CMAKE_CROSSCOMPILING AND NOT SF_SANITIZE)
  foreach(t bindings_python bindings_kotlin)
    add_test(NAME ${t} COMMAND sh -c
      "echo \"SKIPPED: cross build for ${CMAKE_SYSTEM_PROCESSOR}: the host's interpreter cannot load this libsnapfusion\"; exit 77")
    set_tests_properties(${t} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
endif()

if(NOT SF_SANITIZE AND NOT CMAKE_CROSSCOMPILING)
  find_package(Python3 3.9 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND)
    set(SF_BIND_PY_ENV
        "SNAPFUSION_LIBRARY=$<TARGET_FILE:snapfusion>"
        "SNAPFUSION_SOURCE_DIR=${SF_BIND_SRC}"
        "PYTHONDONTWRITEBYTECODE=1")
    if(SF_BUILD_EXAMPLES)
      list(APPEND SF_BIND_PY_ENV "SNAPFUSION_CLI=$<TARGET_FILE:snapfusion_cli>")
    endif()

    # The package against the C library: fixtures, exact equality with direct calls,
    # errors, callbacks, GC, generation (byte-equal to sf_generate and the CLI).
    add_test(NAME bindings_python
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/python/test_snapfusion.py)
    set_tests_properties(bindings_python PROPERTIES ENVIRONMENT "${SF_BIND_PY_ENV}"
                         SKIP_RETURN_CODE 77 TIMEOUT 900)

    # `pip install bindings/python` offline (in-tree, stdlib-only build backend), then the
    # installed copy imports and finds the library. Skipped when the interpreter has no pip.
    set(SF_BIND_PIP_DIR ${CMAKE_CURRENT_BINARY_DIR}/bindings-pip)
    add_test(NAME bindings_python_pip_install COMMAND sh -c
      "set -e; if ! \"$0\" -m pip --version >/dev/null 2>&1; then echo 'SKIPPED: no pip for' \"$0\"; exit 77; fi; rm -rf \"$1\"; \"$0\" -m pip install --quiet --no-index --no-deps --disable-pip-version-check --target \"$1\" \"$2\"; cd \"$1\"; PYTHONPATH=\"$1\" \"$0\" -c 'import snapfusion, sys; assert snapfusion.__file__.startswith(sys.argv[1]), snapfusion.__file__; assert snapfusion.abi_version() == 1; print(\"installed\", snapfusion.__file__, \"library\", snapfusion.version())' \"$1\""
      ${Python3_EXECUTABLE} ${SF_BIND_PIP_DIR} ${SF_BIND_SRC}/bindings/python)
    set_tests_properties(bindings_python_pip_install PROPERTIES ENVIRONMENT "${SF_BIND_PY_ENV}"
                         SKIP_RETURN_CODE 77 TIMEOUT 900)

    # Without $SNAPFUSION_LIBRARY the package finds a `cmake --install`ed library through
    # PKG_CONFIG_PATH alone, through CMAKE_PREFIX_PATH alone, and otherwise says where it looked.
    add_test(NAME bindings_python_find_installed
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/python/test_find_installed.py)
    set_tests_properties(bindings_python_find_installed PROPERTIES
                         ENVIRONMENT "SNAPFUSION_SOURCE_DIR=${SF_BIND_SRC};SNAPFUSION_BUILD_DIR=${PROJECT_BINARY_DIR};CMAKE_COMMAND=${CMAKE_COMMAND};PYTHONDONTWRITEBYTECODE=1"
                         SKIP_RETURN_CODE 77 TIMEOUT 900)

    # The package's build backend: a plain wheel is pure Python and never bundles a stray
    # libsnapfusion; the library it builds for `bundle-library=true` is configured with
    # -DSF_NATIVE=OFF, and such a wheel (built here: it compiles the library) imports its own.
    add_test(NAME bindings_python_wheel
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/python/test_wheel.py)
    set_tests_properties(bindings_python_wheel PROPERTIES
                         ENVIRONMENT "SNAPFUSION_SOURCE_DIR=${SF_BIND_SRC};CMAKE_COMMAND=${CMAKE_COMMAND};PYTHONDONTWRITEBYTECODE=1"
                         TIMEOUT 900)

    # `mypy --strict` over the package and the example; skipped when no mypy is installed.
    add_test(NAME bindings_python_typecheck
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/python/typecheck.sh ${SF_BIND_SRC} ${Python3_EXECUTABLE})
    set_tests_properties(bindings_python_typecheck PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)

    # The bindings' docs: every sh block is run by a test (doc-test tag) or says why not, the
    # copies of a tagged block agree, and no example hard-codes a thread count.
    add_test(NAME bindings_docs_check
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/doc_commands.py --source ${SF_BIND_SRC} check)
    set_tests_properties(bindings_docs_check PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1" TIMEOUT 60)

    # The Python commands and snippets of the documentation, run as written (doc-test tags in
    # bindings/README.md, bindings/python/README.md, examples/python/txt2img.py).
    add_test(NAME bindings_python_docs
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/doc_commands.py --source ${SF_BIND_SRC}
                     --build $<TARGET_FILE_DIR:snapfusion> --fixtures ${SF_FIXTURES_DEFAULT}
                     --work ${CMAKE_CURRENT_BINARY_DIR}/bindings-docs-python --python ${Python3_EXECUTABLE}
                     run python-readme-example python-readme-v11 python-readme-files python-readme-memory
                     python-readme-inspect python-example python-example-memory python-example-estimate
                     python-help)
    set_tests_properties(bindings_python_docs PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1"
                         SKIP_RETURN_CODE 77 TIMEOUT 900)

    # The example CLI on the fixture model: a PNG that the library reads back.
    add_test(NAME bindings_python_example COMMAND sh -c
      "set -e; f=\${SNAPFUSION_FIXTURES:-${SF_FIXTURES_DEFAULT}}; if [ ! -f \"$f/public/manifest.json\" ]; then echo \"SKIPPED: fixtures not found at $f (set SNAPFUSION_FIXTURES)\"; exit 77; fi; rm -f \"$2\"; \"$0\" \"$1\" -m \"$f/public/tiny-sd\" -p 'a photo of an astronaut riding a horse' --steps 4 --seed 3 -t 1 -o \"$2\"; PYTHONPATH=\"$3\" \"$0\" -c 'import snapfusion, sys; im = snapfusion.Image.open(sys.argv[1]); assert im.size == (64, 64), im.size; data = open(sys.argv[1], \"rb\").read(); assert b\"tEXtparameters\" in data and b\"Seed: 3\" in data, \"no parameters chunk\"; print(\"read back\", im)' \"$2\""
      ${Python3_EXECUTABLE} ${SF_BIND_SRC}/examples/python/txt2img.py
      ${CMAKE_CURRENT_BINARY_DIR}/bindings-python-example.png ${SF_BIND_SRC}/bindings/python)
    set_tests_properties(bindings_python_example PROPERTIES ENVIRONMENT "${SF_BIND_PY_ENV}"
                         SKIP_RETURN_CODE 77 TIMEOUT 900)
  else()
    message(STATUS "bindings: no python3 interpreter, Python binding tests not registered")
  endif()

  # Kotlin (JNA): runs the documented build-and-run commands of the example as written
  # (doc-test: kotlin-build-run), then compiles the test program and the README's Kotlin
  # snippet against the binding jar they made and runs both on the fixture model. Skipped
  # (77) when kotlinc or jna.jar is missing.
  if(Python3_Interpreter_FOUND)
    set(SF_BIND_KT_PY ${Python3_EXECUTABLE})
  else()
    set(SF_BIND_KT_PY python3)
  endif()
  add_test(NAME bindings_kotlin COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/kotlin/run.sh
           ${SF_BIND_SRC} ${CMAKE_CURRENT_BINARY_DIR}/bindings-kotlin $<TARGET_FILE:snapfusion>
           ${SF_FIXTURES_DEFAULT} ${SF_BIND_KT_PY})
  set_tests_properties(bindings_kotlin PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()

# Swift: no Swift toolchain here, so the part Swift imports through Clang is checked with
# clang itself: the module map of the CSnapFusion system-library target must build as a
# Clang module and expose the whole API.
add_test(NAME bindings_swift_modulemap COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/swift/check_modulemap.sh
         ${SF_BIND_SRC} ${CMAKE_CURRENT_BINARY_DIR}/bindings-swift)
set_tests_properties(bindings_swift_modulemap PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

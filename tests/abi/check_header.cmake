# The public header must stand alone as strict C99 and as C++ (extern "C").
# SYSROOT: the toolchain's CMAKE_SYSROOT (cross builds), passed on to the compiler.
set(sysroot_flag)
if(SYSROOT)
  set(sysroot_flag --sysroot=${SYSROOT})
endif()
foreach(mode "c;-std=c99" "c;-std=c11" "c++;-std=c++11")
  list(GET mode 0 lang)
  list(GET mode 1 std)
  if(lang STREQUAL "c++")
    # The C compiler's C++ sibling when there is one (aarch64-linux-gnu-gcc -> aarch64-linux-gnu-g++),
    # else the host's: the check is -fsyntax-only on a header that needs only stddef/stdint.
    string(REGEX REPLACE "gcc([^/]*)$" "g++\\1" cxx_sibling "${CC}")
    string(REGEX REPLACE "clang([^/]*)$" "clang++\\1" cxx_sibling "${cxx_sibling}")
    find_program(CXX NAMES ${cxx_sibling} c++ g++ clang++ REQUIRED)
    set(compiler ${CXX})
  else()
    set(compiler ${CC})
  endif()
  execute_process(COMMAND ${compiler} ${sysroot_flag} -x ${lang} ${std} -Wall -Wextra -Werror -pedantic -fsyntax-only ${HEADER}
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${HEADER} does not compile as ${lang} ${std}:\n${err}")
  endif()
endforeach()
message(STATUS "header compiles as C99, C11 and C++11")

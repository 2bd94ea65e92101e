# Installs the build into a scratch prefix, then builds and runs a consumer: with pkg-config
# (found at run time through the RUNPATH the README's command line gives, not through
# LD_LIBRARY_PATH), with find_package(snapfusion 1) (and find_package(snapfusion 2) must fail),
# and statically against the build's libsnapfusion.a.
# Cross builds (TOOLCHAIN set) build the consumers with the cross compiler and the toolchain file,
# link them against the dependencies in CROSS_LIBDIRS ('|'-separated) and run them through
# EMULATOR ('|'-separated command line).
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
string(REPLACE "|" ";" CROSS_LIBDIRS "${CROSS_LIBDIRS}")
set(cross_cflags)
set(cross_ldflags)
set(cross_cmake)
if(SYSROOT)
  list(APPEND cross_cflags --sysroot=${SYSROOT})
endif()
foreach(d ${CROSS_LIBDIRS})
  list(APPEND cross_ldflags -L${d} -Wl,-rpath-link,${d})
endforeach()
if(TOOLCHAIN)
  list(APPEND cross_cmake -DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN})
  if(CROSS_SYSROOT)
    list(APPEND cross_cmake -DSF_ARM64_SYSROOT=${CROSS_SYSROOT})
  endif()
endif()
set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix} RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed")
endif()
file(GLOB_RECURSE pcs ${prefix}/*/snapfusion.pc)
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
file(RELATIVE_PATH pcdir_rel_cmake ${prefix} ${pcdir}/../cmake/snapfusion)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND pkg-config --cflags --libs snapfusion OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not find snapfusion in ${pcdir}")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND pkg-config --variable=libdir snapfusion OUTPUT_VARIABLE libdir RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${CC} ${cross_cflags} -std=c99 -Wall -Werror ${SRC}/consumer.c ${flags} -Wl,-rpath,${libdir} ${cross_ldflags}
                        -o ${WORK}/consumer_pc RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building with pkg-config flags failed: ${flags}")
endif()
unset(ENV{LD_LIBRARY_PATH})
execute_process(COMMAND ${EMULATOR} ${WORK}/consumer_pc RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the pkg-config consumer failed to run (RUNPATH ${libdir})")
endif()
# (snapfusion_DIR too: a toolchain file's CMAKE_FIND_ROOT_PATH would re-root the prefix.)
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/cmake-build -DCMAKE_PREFIX_PATH=${prefix} ${cross_cmake}
                -Dsnapfusion_DIR=${prefix}/${pcdir_rel_cmake}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc EQUAL 0)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/cmake-build RESULT_VARIABLE rc OUTPUT_QUIET)
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "find_package(snapfusion) consumer failed to configure or build")
endif()
execute_process(COMMAND ${EMULATOR} ${WORK}/cmake-build/consumer RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the find_package consumer failed to run")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/cmake-build-v2 -DCMAKE_PREFIX_PATH=${prefix} ${cross_cmake}
                -Dsnapfusion_DIR=${prefix}/${pcdir_rel_cmake}
                -DWANT_VERSION=2 RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(rc EQUAL 0)
  message(FATAL_ERROR "find_package(snapfusion 2) accepted a version-1 library")
endif()
# Static: the archive's only globals are the public functions; a program links with it and
# the dependencies' own libraries, and runs.
execute_process(COMMAND ${CC} ${cross_cflags} -std=c99 -Wall -Werror ${SRC}/consumer.c -I${prefix}/include ${BUILD}/libsnapfusion.a ${cross_ldflags}
                        -lXNNPACK -lpthreadpool -lcpuinfo -lz -lpthread -lm -o ${WORK}/consumer_static
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "linking the static library failed")
endif()
execute_process(COMMAND ${EMULATOR} ${WORK}/consumer_static RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the statically linked consumer failed to run")
endif()
file(REMOVE_RECURSE ${WORK})
message(STATUS "install ok: pkg-config (RUNPATH), find_package(snapfusion 1) and static consumers built and ran (${out})")

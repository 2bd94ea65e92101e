# Cross build for Linux AArch64 (Debian's gcc-aarch64-linux-gnu + libc6-dev-arm64-cross), with the
# dependencies (XNNPACK, pthreadpool, cpuinfo, zlib) taken from a folder of extracted Debian arm64
# packages, which .ci/arm64-sysroot.sh makes:
#
#   sh .ci/arm64-sysroot.sh build-arm64-sysroot
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DSF_ARM64_SYSROOT=$PWD/build-arm64-sysroot
#   cmake --build build-arm64 -j2 && ctest --test-dir build-arm64    # tests run under qemu-aarch64
#
# The C library comes from the cross compiler's own sysroot (/usr/aarch64-linux-gnu); the
# dependency folder is searched on top of it. Tests run through CMAKE_CROSSCOMPILING_EMULATOR
# (qemu-aarch64-static, with the dependency folder on the guest's library path).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

if(NOT SF_ARM64_SYSROOT)
  if(DEFINED ENV{SF_ARM64_SYSROOT})
    set(SF_ARM64_SYSROOT $ENV{SF_ARM64_SYSROOT})
  else()
    get_filename_component(SF_ARM64_SYSROOT ${CMAKE_CURRENT_LIST_DIR}/../build-arm64-sysroot ABSOLUTE)
  endif()
endif()
set(SF_ARM64_SYSROOT ${SF_ARM64_SYSROOT} CACHE PATH "Extracted Debian arm64 packages (.ci/arm64-sysroot.sh)")
# try_compile projects see the toolchain file again; pass the folder on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES SF_ARM64_SYSROOT)
set(SF_CROSS_LIBC /usr/aarch64-linux-gnu)

set(CMAKE_FIND_ROOT_PATH ${SF_ARM64_SYSROOT} ${SF_CROSS_LIBC})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# libXNNPACK.so needs libcpuinfo.so.0 and libpthreadpool.so.0: the linker finds them here.
set(SF_CROSS_LIBDIRS ${SF_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu ${SF_ARM64_SYSROOT}/lib/aarch64-linux-gnu)
set(SF_CROSS_LINK_FLAGS "")
foreach(d ${SF_CROSS_LIBDIRS})
  string(APPEND SF_CROSS_LINK_FLAGS " -Wl,-rpath-link,${d}")
endforeach()
set(CMAKE_EXE_LINKER_FLAGS_INIT "${SF_CROSS_LINK_FLAGS}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${SF_CROSS_LINK_FLAGS}")

find_program(SF_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(SF_QEMU_AARCH64)
  string(REPLACE ";" ":" sf_guest_path "${SF_CROSS_LIBDIRS}")
  set(CMAKE_CROSSCOMPILING_EMULATOR ${SF_QEMU_AARCH64} -L ${SF_CROSS_LIBC} -E LD_LIBRARY_PATH=${sf_guest_path})
endif()

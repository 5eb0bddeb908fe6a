# Included from bench/CMakeLists.txt: what the port and pool units (bench_port.c,
# bench_pool.c) need on top of the sync objects: the pool module's objects, its headers,
# and libuv (libuv1-dev, found by pkg-config) for the uv_queue_work peer; without libuv
# the libuv rows are left out.
if(TARGET weft_pool_obj)
  target_sources(weft-bench PRIVATE $<TARGET_OBJECTS:weft_pool_obj>)
  target_include_directories(weft-bench PRIVATE ${PROJECT_SOURCE_DIR}/pool/include)
  target_compile_definitions(weft-bench PRIVATE WEFT_BENCH_HAVE_POOL=1)
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(WEFT_BENCH_UV QUIET IMPORTED_TARGET libuv)
endif()
if(WEFT_BENCH_UV_FOUND)
  target_compile_definitions(weft-bench PRIVATE WEFT_BENCH_HAVE_UV=1)
  target_link_libraries(weft-bench PRIVATE PkgConfig::WEFT_BENCH_UV)
else()
  message(STATUS "weft: libuv (libuv1-dev) not found, uv_queue_work rows left out of weft-bench")
endif()

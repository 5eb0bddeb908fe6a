# Warnings, sanitizers and visibility shared by every weft target.
set(WEFT_C_WARNINGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla)
if(WEFT_WERROR)
  list(APPEND WEFT_C_WARNINGS -Werror)
endif()

if(WEFT_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
elseif(WEFT_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT WEFT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "WEFT_SANITIZE must be '', 'address' or 'thread'")
endif()

set(WEFT_EXTRA_LIBS "")

# weft_module(<name> SOURCES ... DEPENDS <lower modules>): an OBJECT library that sees its
# own src/ and include/ plus the include/ of the modules below it, never above.
function(weft_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPENDS" ${ARGN})
  add_library(weft_${name}_obj OBJECT ${M_SOURCES})
  set_target_properties(weft_${name}_obj PROPERTIES POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden)
  target_compile_definitions(weft_${name}_obj PRIVATE _GNU_SOURCE WEFT_BUILDING
    $<$<BOOL:${WEFT_DEBUG}>:WEFT_DEBUG=1>)
  target_compile_options(weft_${name}_obj PRIVATE ${WEFT_C_WARNINGS})
  target_include_directories(weft_${name}_obj PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/include)
  foreach(dep ${M_DEPENDS})
    target_include_directories(weft_${name}_obj PRIVATE
      ${PROJECT_SOURCE_DIR}/${dep}/include ${PROJECT_SOURCE_DIR}/${dep}/src)
  endforeach()
endfunction()

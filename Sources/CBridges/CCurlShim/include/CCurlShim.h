#ifndef CCURLSHIM_H
#define CCURLSHIM_H
// curl_easy_setopt and curl_easy_getinfo are variadic C functions, which Swift cannot call.
// One typed wrapper per argument type the project uses.
#include <curl/curl.h>

CURLcode bx_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode bx_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode bx_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode bx_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode bx_curl_setopt_write_callback(CURL *handle, CURLoption option,
                                       size_t (*callback)(char *, size_t, size_t, void *));
CURLcode bx_curl_setopt_xferinfo(CURL *handle, int (*callback)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));
CURLcode bx_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode bx_curl_getinfo_double(CURL *handle, CURLINFO info, double *value);

#endif

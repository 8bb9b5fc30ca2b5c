#include "chat_shim.h"

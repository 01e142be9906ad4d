-- The Lua half of the kv module's db methods (bindings/kv.cpp calls this once per state, with
-- the db methods table, which it changes in place). A backend that waits for a server resumes
-- the task with `failed, message` instead of raising (a resumed C function cannot raise), so
-- every method raises here; and db:update steps until fn's writes commit (fn runs again after a
-- conflict, or a read PostgreSQL had not fetched: bindings/kv_postgres.cpp, bindings/kv_lmdb.cpp).
return function(methods, update_step, new_attempt, failed, again)
  local error, pairs = error, pairs

  local function checked(first, ...)
    if first == failed then error((...), 0) end
    return first, ...
  end

  local wrapped = {}
  for name, method in pairs(methods) do
    wrapped[name] = function(...) return checked(method(...)) end
  end
  for name, method in pairs(wrapped) do methods[name] = method end

  function methods.update(db, fn)
    local attempt = new_attempt(db)
    local function step(first, ...)
      if first == again then return step(update_step(db, fn, attempt)) end
      return checked(first, ...)
    end
    return step(update_step(db, fn, attempt))
  end
end

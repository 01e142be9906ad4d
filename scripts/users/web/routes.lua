-- The users service's web pages (specs/users.md §4.6): sign-in through an OpenID Connect provider
-- (oidc.lua), the profile pages, the API token and its servicex.yaml, sign-out. Sessions live in
-- a signed cookie (session.lua); every form POST must carry the session's CSRF token. Registered
-- on the service by init.lua, which passes what the password API shares with them (`account`).
local crypto = require "crypto"
local depot = require "depot"
local log = require "log"
local store = require "users.store"
local oidc = require "users.oidc"
local Sessions = require "users.session"
local arguments = require "users.arguments"
local pages = require "users.web.pages"

-- How long the provider may take between /sign-in and /auth-callback.
local SIGN_IN_SECONDS = 600
-- The file types servicex.yaml may name, found in CODE_GEN_IMAGE (spec §4.6).
local FILE_TYPES = { "xaod", "uproot", "miniaod", "nanoaod" }
local HTML_HEADERS = {
  ["Content-Type"] = "text/html; charset=utf-8",
  ["Cache-Control"] = "no-store",
  ["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'",
  ["X-Frame-Options"] = "DENY",
}

-- Pages, not API operations: the service's OpenAPI document leaves them out.
local PAGE_ROUTE = { openapi = false }

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
-- One look for Depot's pages: the staging page's stylesheet, and what these pages add to it.
local STYLESHEETS = { ["look.css"] = here .. "/../../staging/web/style.css", ["users.css"] = here .. "/users.css" }

-- `account`: sign_up(fields) → user | nil (the e-mail or identity is taken), new_refresh_token(user)
-- → token, is_admin_email(email), code_gen_image.
return function(service, config, account)
  local provider = oidc.from_config(config)
  local secret = config.string("SECRET_KEY", "")
  if secret == "" then secret = store.generated_secret("generated_session_secret") end
  local sessions = Sessions.new(secret, config.integer("SESSION_LIFETIME", 43200))
  local fixed_redirect_uri = config.string("OIDC_REDIRECT_URI", "")

  -- http for a local host, as the original wrote servicex.yaml; X-Scheme from a proxy wins.
  local function scheme(req)
    local forwarded = req:header("X-Scheme")
    if forwarded then return forwarded end
    local host = (req:header("Host") or ""):gsub(":%d+$", "")
    if host == "localhost" or host == "127.0.0.1" or host == "[::1]" then return "http" end
    return "https"
  end

  local function root_url(web) return scheme(web.req) .. "://" .. (web.req:header("Host") or "localhost") .. web.prefix end

  local function redirect_uri(web)
    return fixed_redirect_uri ~= "" and fixed_redirect_uri or root_url(web) .. "/auth-callback"
  end

  local function save(web) sessions:write(web.res, web.session, web.prefix == "" and "/" or web.prefix, scheme(web.req) == "https") end

  local function flash(web, kind, text)
    web.session.flash = web.session.flash or {}
    table.insert(web.session.flash, { kind = kind, text = text })
  end

  local function view(web)
    local messages = web.session.flash
    web.session.flash = nil
    return { prefix = web.prefix, csrf = web.session.csrf, user = web.user, flash = messages }
  end

  local function render(web, status, page, ...)
    local html = page(view(web), ...)
    save(web)
    return status, html, HTML_HEADERS
  end

  local function redirect(web, location)
    save(web)
    return 302, "", { Location = location:match("^https?://") and location or web.prefix .. location }
  end

  local function problem(web, status, title, text) return render(web, status, pages.problem, title, text) end

  -- A POSTed form's fields, or nil after answering 403 when its CSRF token is not the session's.
  local function form(web)
    local fields = arguments.urlencoded(web.req:body())
    if Sessions.csrf_ok(web.session, fields.csrf_token) then return fields end
    log.warn("form refused: bad CSRF token", { path = web.req.path })
    return nil, problem(web, 403, "Form expired", "This form has expired. Go back, reload the page and try again.")
  end

  -- Registers `handler(web)` on `path`; web has req, res, session, user (the signed-in one or
  -- nil) and prefix (the mount the request came through).
  local function page(method, path, handler)
    service:route(method, path, function(req, res)
      local request_path = req.path:gsub("/+$", "")
      local route_path = path:gsub("/+$", "")
      local web = { req = req, res = res, session = sessions:read(req),
        prefix = request_path:sub(1, #request_path - #route_path) }
      if type(web.session.user) == "string" then web.user = store.by_sub(web.session.user) end
      return handler(web)
    end, PAGE_ROUTE)
  end

  -- The signed-in user, or nil after sending them where they can become one.
  local function signed_in(web)
    if web.user then return web.user end
    return nil, redirect(web, web.session.identity and "/profile/new" or "/sign-in")
  end

  -- A form POST of a signed-in user: the user and the form's fields, or nil and the answer.
  local function signed_in_form(web)
    local user, status, html, headers = signed_in(web)
    if not user then return nil, nil, status, html, headers end
    local fields
    fields, status, html, headers = form(web)
    if not fields then return nil, nil, status, html, headers end
    return user, fields
  end

  local function start_sign_in(web)
    if not provider then
      return problem(web, 503, "No identity provider", "This deployment has no identity provider configured.")
    end
    local url, login = provider:authorization(redirect_uri(web))
    if not url then
      log.error("sign-in cannot start", { reason = login })
      return problem(web, 502, "Sign-in unavailable", "The identity provider cannot be reached. Try again later.")
    end
    web.session.login = login
    return redirect(web, url)
  end

  -- The stored user of a provider identity: by its subject or one of its linked identities
  -- (Globus's identity_set), or JWT_ADMIN's admin account on its first sign-in with that e-mail as
  -- the provider asserts it (a non-admin account holding that e-mail typed it: never linked).
  local function known_user(claims)
    local user = store.by_sub(claims.sub)
    if user then return user end
    for _, identity in ipairs(type(claims.identity_set) == "table" and claims.identity_set or {}) do
      user = type(identity) == "table" and type(identity.sub) == "string" and store.by_sub(identity.sub)
      if user then return user end
    end
    if type(claims.email) ~= "string" or claims.email_verified == false or not account.is_admin_email(claims.email) then
      return nil
    end
    local admin = store.by_email(claims.email)
    if admin and admin.admin and not admin.identity_provider then
      log.info("admin linked to the identity provider", { id = admin.id })
      return store.set_identity(admin.id, claims.sub, provider.issuer)
    end
    return nil
  end

  page("GET", "/", function(web) return render(web, 200, pages.home, provider ~= nil) end)
  page("GET", "/sign-in", start_sign_in)

  page("GET", "/auth-callback", function(web)
    local query = web.req.query
    if query.error then
      flash(web, "error", "Sign-in failed: " .. tostring(query.error_description or query.error))
      return redirect(web, "/")
    end
    if not (provider and query.code) then return start_sign_in(web) end
    local login = web.session.login
    web.session.login = nil -- one callback per sign-in
    if type(login) ~= "table" or type(query.state) ~= "string" or not crypto.equals(query.state, login.state) then
      log.warn("sign-in refused: state does not match")
      return problem(web, 400, "Sign-in failed", "This sign-in is not the one this browser started. Sign in again.")
    end
    if depot.now() - login.started > SIGN_IN_SECONDS then
      return problem(web, 400, "Sign-in failed", "The sign-in took too long. Sign in again.")
    end
    local claims, reason = provider:exchange(query.code, login)
    if not claims then return problem(web, 400, "Sign-in failed", "The identity provider's answer was refused: " .. reason .. ".") end
    -- A new session (and CSRF token) for the new identity: nothing from before carries over.
    web.session = { csrf = crypto.token(24), identity = {
      sub = claims.sub, name = claims.name, email = claims.email, institution = claims.organization,
      email_verified = claims.email_verified,
    } }
    local user = known_user(claims)
    if not user then return redirect(web, "/profile/new") end
    web.session.user = user.sub
    log.info("signed in", { id = user.id })
    return redirect(web, "/profile")
  end)

  -- The profile form's fields, and the problems of each (spec §4.6: WTForms' rules).
  local function profile_fields(fields)
    local values, errors = {}, {}
    for _, name in ipairs({ "name", "email", "institution", "experiment" }) do
      values[name] = (fields[name] or ""):match("^%s*(.-)%s*$")
      if values[name] == "" then errors[name] = "This field is required." end
      if #values[name] > 120 then errors[name] = "Field cannot be longer than 120 characters." end
    end
    if not errors.email and not values.email:match("^[^@%s]+@[^@%s]+%.[^@%s.]+$") then errors.email = "Invalid email address." end
    if not errors.experiment and values.experiment ~= "ATLAS" and values.experiment ~= "CMS" then
      errors.experiment = "Not a valid choice."
    end
    return values, errors
  end

  local INVALID = "Profile could not be saved. Please fix invalid fields below."

  page("GET", "/profile/new", function(web)
    local identity = web.session.identity
    if web.user then return redirect(web, "/profile") end
    if not identity then return redirect(web, "/sign-in") end
    return render(web, 200, pages.profile_form, "Create your profile", "/profile/new",
      { name = identity.name, email = identity.email, institution = identity.institution }, {}, "Create profile")
  end)

  page("POST", "/profile/new", function(web)
    local identity = web.session.identity
    if web.user then return redirect(web, "/profile") end
    if not identity then return redirect(web, "/sign-in") end
    local fields, status, html, headers = form(web)
    if not fields then return status, html, headers end
    local values, errors = profile_fields(fields)
    -- Admin by the e-mail the provider vouches for, never by what was typed in the form.
    local admin = type(identity.email) == "string" and identity.email_verified ~= false and account.is_admin_email(identity.email)
    local user
    if not next(errors) then
      user = account.sign_up({ sub = identity.sub, email = values.email, name = values.name,
        institution = values.institution, experiment = values.experiment, admin = admin, pending = not admin,
        identity_provider = provider and provider.issuer })
      if not user then errors.email = "This e-mail address is already registered." end
    end
    if not user then
      flash(web, "error", INVALID)
      return render(web, 200, pages.profile_form, "Create your profile", "/profile/new", values, errors, "Create profile")
    end
    account.new_refresh_token(user)
    web.session.user = user.sub
    flash(web, "success", "Profile created!" .. (user.pending and " Your account is pending approval. We'll email you when it's ready." or ""))
    return redirect(web, "/profile")
  end)

  page("GET", "/profile", function(web)
    local user, status, html, headers = signed_in(web)
    if not user then return status, html, headers end
    return render(web, 200, pages.profile, user)
  end)

  page("GET", "/profile/edit", function(web)
    local user, status, html, headers = signed_in(web)
    if not user then return status, html, headers end
    return render(web, 200, pages.profile_form, "Edit your profile", "/profile/edit", user, {}, "Save profile")
  end)

  page("POST", "/profile/edit", function(web)
    local user, fields, status, html, headers = signed_in_form(web)
    if not user then return status, html, headers end
    local values, errors = profile_fields(fields)
    local changed
    if not next(errors) then
      changed = store.change(user.id, function(stored)
        for name, value in pairs(values) do stored[name] = value end
      end)
      if not changed then errors.email = "This e-mail address is already registered." end
    end
    if not changed then
      flash(web, "error", INVALID)
      return render(web, 200, pages.profile_form, "Edit your profile", "/profile/edit", values, errors, "Save profile")
    end
    flash(web, "success", "Profile updated.")
    return redirect(web, "/profile")
  end)

  page("GET", "/api-token", function(web)
    local user, status, html, headers = signed_in(web)
    if not user then return status, html, headers end
    return render(web, 200, pages.confirm, "New API token", "A new API token revokes the one you have: "
      .. "download servicex.yaml again afterwards.", "/api-token", "Generate a new API token")
  end)

  page("POST", "/api-token", function(web)
    local user, _, status, html, headers = signed_in_form(web)
    if not user then return status, html, headers end
    account.new_refresh_token(user)
    log.info("API token replaced", { id = user.id })
    flash(web, "success", "A new API token was made; the old one no longer works. Download servicex.yaml again.")
    return redirect(web, "/profile")
  end)

  page("GET", "/.servicex", function(web)
    local user, status, html, headers = signed_in(web)
    if not user then return status, html, headers end
    local found = {}
    for _, kind in ipairs(FILE_TYPES) do
      if account.code_gen_image:lower():find(kind, 1, true) then found[#found + 1] = kind end
    end
    if #found ~= 1 then
      flash(web, "error", "Unable to infer filetype from CODE_GEN_IMAGE: please ask the administrator.")
      return redirect(web, "/profile")
    end
    local token = user.refresh_token or account.new_refresh_token(user)
    save(web)
    return 200, pages.servicex_yaml(found[1], root_url(web) .. "/", token), {
      ["Content-Type"] = "text/plain; charset=utf-8", ["Cache-Control"] = "no-store",
      ["Content-Disposition"] = "attachment; filename=servicex.yaml",
    }
  end)

  page("GET", "/sign-out", function(web)
    return render(web, 200, pages.confirm, "Sign out", "Sign out of ServiceX in this browser.", "/sign-out", "Sign out")
  end)

  page("POST", "/sign-out", function(web)
    local fields, status, html, headers = form(web)
    if not fields then return status, html, headers end
    web.session, web.user = { csrf = crypto.token(24) }, nil
    flash(web, "success", "You have signed out.")
    return redirect(web, "/")
  end)

  service:get("/web/:file", function(req, res)
    local path = STYLESHEETS[req.params.file]
    if not (path and res:file(path, { content_type = "text/css; charset=utf-8" })) then return 404, { message = "Not Found" } end
  end, PAGE_ROUTE)
end

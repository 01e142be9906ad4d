-- The HTML of the users service's web pages, rendered on the server (no script, no build step)
-- in the staging page's look: its stylesheet, banner, panels and footer. Every value written into
-- the HTML goes through escape(); every form carries the session's CSRF token.
local M = {}

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

function M.escape(value)
  return (tostring(value == nil and "" or value):gsub("[&<>\"']", ENTITIES))
end
local escape = M.escape

M.EXPERIMENTS = { "ATLAS", "CMS" }

local LOGO = '<span class="logo-mark">Service</span><span class="logo-o">X</span>'

-- A form posting to `action` with the CSRF token and `inner` (HTML).
function M.form(view, action, inner, attributes)
  return string.format('<form method="post" action="%s"%s><input type="hidden" name="csrf_token" value="%s">%s</form>',
    escape(view.prefix .. action), attributes or "", escape(view.csrf), inner)
end

local function navigation(view)
  if view.user then
    return '<nav class="user-nav"><a href="' .. escape(view.prefix .. "/profile") .. '">' .. escape(view.user.name or view.user.email)
      .. "</a>" .. M.form(view, "/sign-out", '<button type="submit" class="link-button">Sign out</button>', ' class="inline"')
      .. "</nav>"
  end
  return '<nav class="user-nav"><a href="' .. escape(view.prefix .. "/sign-in") .. '" id="sign-in">Sign in</a></nav>'
end

local function flashes(view)
  local out = {}
  for _, message in ipairs(view.flash or {}) do
    out[#out + 1] = string.format('<p class="result %s flash" role="status">%s</p>', escape(message.kind), escape(message.text))
  end
  return table.concat(out)
end

-- The whole page: `view` has prefix (the mount), csrf, user (signed in, or nil), flash (a list of
-- {kind = "success"|"error", text}); `title` and `body` (HTML) are the page's own.
function M.page(view, title, body)
  return table.concat({
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
    "<title>", escape(title), " · ServiceX</title>\n",
    '<link rel="stylesheet" href="', escape(view.prefix), '/web/look.css">\n',
    '<link rel="stylesheet" href="', escape(view.prefix), '/web/users.css">\n</head>\n<body>\n',
    '<header class="banner"><div class="logo" aria-hidden="true">', LOGO, "</div>",
    '<div><h1>ServiceX</h1><p class="tagline">Columnar data delivery for ATLAS and CMS</p></div>',
    navigation(view), "</header>\n",
    '<main class="layout">', flashes(view), body, "</main>\n",
    '<footer class="footer"><span class="logo small" aria-hidden="true">', LOGO,
    "</span><span>ServiceX user service, served by Depot</span></footer>\n</body>\n</html>\n",
  })
end

local function panel(id, title, inner)
  return string.format('<section class="panel wide" id="%s" aria-labelledby="%s-title"><h2 id="%s-title">%s</h2>%s</section>',
    id, id, id, escape(title), inner)
end

function M.home(view, provider_ready)
  local inner
  if view.user then
    inner = '<p class="hint">You are signed in.</p><p><a href="' .. escape(view.prefix .. "/profile") .. '">Your profile and API token</a></p>'
  elseif provider_ready then
    inner = '<p class="hint">Sign in with your institution\'s identity provider to get an API token.</p>'
      .. '<p><a class="button-link" href="' .. escape(view.prefix .. "/sign-in") .. '">Sign in</a></p>'
  else
    inner = '<p class="hint">No identity provider is configured: accounts are made with the password API.</p>'
  end
  return M.page(view, "Welcome", panel("welcome", "Welcome to ServiceX", inner))
end

local function text_field(name, label, value, errors, input_type)
  local problem = errors[name]
  return string.format('<label for="%s">%s</label><input id="%s" name="%s" type="%s" value="%s" maxlength="120" required%s>%s',
    name, label, name, name, input_type or "text", escape(value), problem and ' aria-invalid="true"' or "",
    problem and '<span class="field-error">' .. escape(problem) .. "</span>" or "")
end

-- The profile form (new or edit): `values` by field name, `errors` by field name.
function M.profile_form(view, title, action, values, errors, submit)
  local options = {}
  for _, experiment in ipairs(M.EXPERIMENTS) do
    options[#options + 1] = string.format('<option value="%s"%s>%s</option>', experiment,
      values.experiment == experiment and " selected" or "", experiment)
  end
  local inner = text_field("name", "Name", values.name, errors)
    .. text_field("email", "E-mail", values.email, errors, "email")
    .. text_field("institution", "Institution", values.institution, errors)
    .. '<label for="experiment">Experiment</label><select id="experiment" name="experiment">' .. table.concat(options)
    .. "</select>" .. (errors.experiment and '<span class="field-error">' .. escape(errors.experiment) .. "</span>" or "")
    .. '<button type="submit">' .. escape(submit) .. "</button>"
  return M.page(view, title, panel("profile-form", title, M.form(view, action, inner, ' id="profile"')))
end

function M.profile(view, user)
  local status = user.admin and "administrator" or (user.pending and "pending approval" or "approved")
  local rows = {}
  for _, field in ipairs({ { "Name", user.name }, { "E-mail", user.email }, { "Institution", user.institution },
      { "Experiment", user.experiment }, { "Status", status } }) do
    rows[#rows + 1] = string.format('<tr><th scope="row">%s</th><td>%s</td></tr>', field[1], escape(field[2]))
  end
  local details = '<div class="table-scroll"><table id="profile-details"><tbody>' .. table.concat(rows)
    .. "</tbody></table></div>"
    .. '<p class="actions"><a href="' .. escape(view.prefix .. "/profile/edit") .. '">Edit profile</a></p>'
  local token = '<p class="hint">Your API token goes in <code>servicex.yaml</code>; clients trade it for '
    .. 'access tokens at <code>/token/refresh</code>. A new token revokes the old one.</p>'
    .. '<p class="actions"><a id="download-config" href="' .. escape(view.prefix .. "/.servicex") .. '">Download servicex.yaml</a></p>'
    .. M.form(view, "/api-token", '<button type="submit" id="new-token">Generate a new API token</button>')
  return M.page(view, "Profile", panel("profile", "Your profile", details) .. panel("api-token", "API token", token))
end

-- A page asking to confirm an action that changes something (a GET must not).
function M.confirm(view, title, text, action, button)
  return M.page(view, title, panel("confirm", title, '<p class="hint">' .. escape(text) .. "</p>"
    .. M.form(view, action, '<button type="submit">' .. escape(button) .. "</button>")))
end

function M.problem(view, title, text)
  return M.page(view, title, panel("problem", title, '<p class="result error">' .. escape(text) .. "</p>"
    .. '<p><a href="' .. escape(view.prefix .. "/") .. '">Back to the start page</a></p>'))
end

-- servicex.yaml (spec §4.6): one endpoint of the deployment's file type.
function M.servicex_yaml(kind, endpoint, token)
  return string.format("api_endpoints:\n  - name: %s\n    endpoint: %s\n    token: %s\n    type: %s\n",
    kind, endpoint, token, kind)
end

return M
